# session-worker: the auth-state store for WhatsApp API servers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install the package (not an editable install) so the twistd plugin lands in
# site-packages and works from any working directory.
COPY pyproject.toml README.md /src/
COPY session_daemon /src/session_daemon
COPY twisted /src/twisted
RUN pip install /src && rm -rf /src

RUN useradd --system --uid 10001 --home-dir /worker --create-home worker \
    && mkdir -p /worker/instances \
    && chown -R worker:worker /worker
USER worker
WORKDIR /worker

# Sessions live here; keep it on a volume.
VOLUME ["/worker/instances"]
EXPOSE 5656

HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:5656/health', timeout=2).status == 200 else 1)"]

# No pidfile: a container is the process, and a stale pidfile after a crash
# would stop twistd from starting again.
CMD ["twistd", "--nodaemon", "--pidfile=", "session-worker"]
