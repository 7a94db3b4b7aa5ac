# rotator: a slim image that runs as a non-root user on a read-only root filesystem.
#
#   docker build -t rotator:local .
#   docker run --rm --read-only --tmpfs /tmp -v "$PWD/rotator.toml:/etc/rotator/config/rotator.toml:ro" rotator:local
#
# The entrypoint is the `rotator` command; the default command is the worker (`run`).
# Other commands: `docker run ... rotator:local db upgrade`, `... once --dry-run`, `... check`.
# Nothing secret is baked in: configuration, service keys and passwords are mounted or
# passed as environment variables at run time (see deploy/README.md).

# major.minor only: the migrations are copied into this Python's site-packages below.
ARG PYTHON_VERSION=3.12

# --- builder: the locked dependencies, then the project, into a virtual environment --
FROM python:${PYTHON_VERSION}-slim AS builder
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m pip install "uv==${UV_VERSION}" && python -m venv /opt/venv
# The runtime dependencies exactly as uv.lock pins them, hash-checked (no dev or test groups).
COPY pyproject.toml uv.lock ./
RUN uv export --frozen --no-dev --no-emit-project --format requirements-txt --output-file /tmp/requirements.txt \
    && /opt/venv/bin/pip install --require-hashes --requirement /tmp/requirements.txt
COPY README.md ./
COPY service/ ./service/
RUN /opt/venv/bin/pip install --no-deps . \
    && /opt/venv/bin/pip uninstall --yes pip

# --- runtime -----------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime
ARG PYTHON_VERSION
LABEL org.opencontainers.image.title="rotator" \
      org.opencontainers.image.description="Rotates SAP AI Core Docker registry secrets from Vault / OpenBao, with a tamper-evident audit trail in PostgreSQL." \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ROTATOR_CONFIG=/etc/rotator/config/rotator.toml

# A fixed, numeric uid/gid (Kubernetes' runAsNonRoot can only verify a numeric USER).
# /var/lib/rotator/service-keys belongs to it so that a volume mounted there (the compose
# stack's AI Core emulator writes its service keys into one) is writable by it.
RUN groupadd --system --gid 10001 rotator \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin rotator \
    && install --directory --owner=10001 --group=10001 --mode=0700 /var/lib/rotator/service-keys

COPY --from=builder /opt/venv /opt/venv
# Alembic scripts: service/audit/migrate.py looks for `migrations/` beside the `service`
# package, which is site-packages once installed.
COPY migrations/ /opt/venv/lib/python${PYTHON_VERSION}/site-packages/migrations/
# Fail the build, not the first `rotator db upgrade`, when the migrations are not found.
RUN ["python", "-c", "from service.audit.migrate import head; print('migrations head:', head())"]

USER 10001:10001
# /livez, /readyz, /metrics, /status: set http.listen = "0.0.0.0:9464" in the configuration.
EXPOSE 9464
# No curl in slim images: the standard library fetches /livez (an HTTP error or no answer exits 1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/livez', timeout=4).close()"]
# Exec form: python is PID 1 and receives SIGTERM itself; the worker handles it (graceful stop).
ENTRYPOINT ["rotator"]
CMD ["run"]
