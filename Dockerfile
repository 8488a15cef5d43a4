# syntax=docker/dockerfile:1
#
# The SignalML runtime image: the engine (`signalml serve`, with its query API),
# the drift monitor (`signalml monitor`), `signalml topics`, replay and predict.
# No torch, LightGBM or XGBoost: every score comes from Triton (Dockerfile.triton);
# training runs in the trainer image (Dockerfile.trainer). Versions come from
# requirements-lock.txt, the lock every SignalML environment installs from.
#
#   docker build -t signalml:0.1.0 .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Build from a copy of the sources; only what the package needs is copied, so a
# local virtual environment, data or model repository never ends up in the image.
WORKDIR /src
COPY pyproject.toml README.md requirements-lock.txt ./
COPY signalml/ signalml/
COPY stream/ stream/
COPY models/ models/
COPY training/ training/
RUN pip install -c requirements-lock.txt . \
    && rm -rf /src

# Runtime: an unprivileged user and a working directory whose relative paths
# (triton_repo/, data/, artifacts/, .signalml/) match signalml.yaml's defaults.
# The folders exist here so that named volumes mounted on them inherit the owner.
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin signalml \
    && mkdir -p /app/triton_repo /app/data /app/artifacts /app/.signalml \
    && chown -R signalml:signalml /app
WORKDIR /app
# The repository's configuration file: found in the working directory, so the
# containers start from the same settings as `signalml` run from a checkout;
# docker-compose.yml then overrides hosts and bind addresses with
# SIGNALML__<SECTION>__<KEY> variables.
COPY signalml.yaml /app/signalml.yaml
USER signalml

# Engine metrics/health/query API, monitor metrics/health.
EXPOSE 8090 8091

ENTRYPOINT ["signalml"]
CMD ["--help"]
