# syntax=docker/dockerfile:1
#
# The SignalML image: one image for the engine (`signalml serve`), the drift
# monitor (`signalml monitor`) and the trainer (`signalml train`, `signalml publish`).
# Triton and Kafka run in their own containers (see docker-compose.yml); this image
# only holds the Python package and its client libraries.
#
#   docker build -t signalml:0.1.0 .
#   docker build -t signalml:0.1.0 --build-arg EXTRAS=test .   # with optional extras

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# LightGBM's wheel links against the system OpenMP runtime.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# Build from a copy of the sources; only what the package needs is copied, so a
# local virtual environment, data or model repository never ends up in the image.
WORKDIR /src
# README.md* : pyproject.toml names README.md as the long description; the glob
# keeps the build working while that file does not exist yet.
COPY pyproject.toml README.md* ./
COPY signalml/ signalml/
COPY stream/ stream/
COPY models/ models/
COPY training/ training/

# Comma-separated optional extras from pyproject.toml, empty for none.
ARG EXTRAS=""
RUN pip install ".${EXTRAS:+[$EXTRAS]}" \
    && rm -rf /src/build /src/*.egg-info

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

# Engine metrics/health, monitor metrics/health.
EXPOSE 8090 8091

ENTRYPOINT ["signalml"]
CMD ["--help"]
