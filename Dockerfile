# syntax=docker/dockerfile:1
#
# journey-relay: one image for every process. The command picks what runs:
#   docker run IMAGE                                  -> relay api --host 0.0.0.0 --port 8080
#   docker run IMAGE worker                           -> relay worker
#   docker run IMAGE simulator --host 0.0.0.0 --port 8090
# Settings come from the environment (see README.md, "Settings").
#
# Build:  docker build -t journey-relay .

# --- builder: a wheel of the project and a wheel of every locked dependency ----------------
FROM python:3.12-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
# Only what the wheel is built from (README.md is the package's long description; the
# client package, relay_client, ships inside the server as relay.client).
COPY requirements/server.lock requirements/build.lock ./requirements/
COPY pyproject.toml README.md ./
COPY relay ./relay
COPY workers ./workers
COPY clients/python/src ./clients/python/src

# The server's lock only, no dev tools: exact versions, each file checked against its hash.
# Every one ships binary wheels for CPython 3.12 on linux amd64 and arm64, so this stage
# needs no compiler either; a wheel built from a source archive would fail its hash.
RUN pip install --require-hashes -r requirements/build.lock \
 && pip wheel --require-hashes --wheel-dir /wheels -r requirements/server.lock \
 && pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && cp requirements/server.lock /wheels/

# --- runtime: the wheels installed, nothing else ---------------------------------------------
FROM python:3.12-slim

LABEL org.opencontainers.image.title="journey-relay" \
      org.opencontainers.image.description="Polls a slow image/video generation API for its tasks and delivers signed webhooks." \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="0.1.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 relay \
 && useradd --system --uid 10001 --gid relay --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin relay

# The wheels are bind-mounted from the builder, so none of them stays in a layer; the lock
# is checked again here, and the project's own wheel adds nothing to it (--no-deps).
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels --require-hashes \
        -r /wheels/server.lock \
 && pip install --no-cache-dir --no-index --no-deps /wheels/journey_relay-*.whl

WORKDIR /app
USER 10001:10001

EXPOSE 8080

# For the API (the default command). Containers running `worker` or `simulator`
# should disable or replace it (docker-compose.yml does).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"]

ENTRYPOINT ["relay"]
CMD ["api", "--host", "0.0.0.0", "--port", "8080"]
