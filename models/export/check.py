"""Check every member of an artifact in-process, in a child process.

Native libraries do not always fail politely: LightGBM aborts the whole
process on some truncated model files. :func:`check_artifact_isolated`
therefore runs :func:`check_artifact` in a child Python (``python -m
models.export.check DIR``) and turns a crash into an ArtifactError that
names the member being checked and the signal.

For each member the check reports the largest |file - golden| over the
golden rows and, for deep members, whether the torch runtime's files
reproduce the golden scores too (then they are shipped for GPU hosts).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from models.export.artifact import ArtifactError, ModelSetArtifact, read_artifact
from models.export.native import check_member
from models.export.torch_source import verified_torch_files

PROGRESS = "checking member "


@dataclass(frozen=True)
class MemberCheck:
    max_abs_diff: float
    torch_runtime: bool


def check_artifact(artifact: ModelSetArtifact, *, progress=None) -> dict[str, MemberCheck]:
    """In this process: :func:`check_member` for every member, plus the
    torch-runtime verification of deep members."""
    results = {}
    for member in artifact.members:
        if progress:
            progress(member.name)
        worst = check_member(artifact, member)
        torch_ok = member.input == "sequence" and bool(verified_torch_files(artifact, member))
        results[member.name] = MemberCheck(worst, torch_ok)
    return results


def check_artifact_isolated(directory: str | Path, *, timeout_s: float = 600.0) -> dict[str, MemberCheck]:
    """:func:`check_artifact` in a child process; ArtifactError on any
    refusal, crash or timeout."""
    argv = [sys.executable, "-m", "models.export.check", str(directory)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ArtifactError(f"checking {directory} took longer than {timeout_s:.0f} s") from None
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except ValueError:
        answer = None
    if done.returncode == 0 and answer and answer.get("ok"):
        return {name: MemberCheck(**values) for name, values in answer["members"].items()}
    if answer and "error" in answer:
        raise ArtifactError(answer["error"])
    member = next(
        (line[len(PROGRESS):] for line in reversed(done.stderr.splitlines()) if line.startswith(PROGRESS)), None
    )
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        where = f"member {member}: its model file" if member else "a model file"
        raise ArtifactError(f"{where} crashed the native library while being loaded ({name}); it is corrupted")
    tail = "\n".join(done.stderr.strip().splitlines()[-5:])
    raise ArtifactError(f"checking {directory} failed (exit {done.returncode}): {tail}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m models.export.check ARTIFACT_DIR", file=sys.stderr)
        return 2

    def progress(name: str) -> None:
        print(PROGRESS + name, file=sys.stderr, flush=True)

    try:
        results = check_artifact(read_artifact(argv[0]), progress=progress)
    except ArtifactError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 1
    print(json.dumps({"ok": True, "members": {k: vars(v) for k, v in results.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
