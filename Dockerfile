# Production image: `quarterback serve` (migrates on start) as a non-root user.
# Configure with QB_ variables, e.g. QB_DATABASE_URL=postgresql+asyncpg://user:pass@db:5432/qb
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
RUN python -m venv /opt/venv && /opt/venv/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    QB_HOST=0.0.0.0 \
    QB_PORT=8000 \
    QB_DATABASE_URL=sqlite+aiosqlite:////data/quarterback.db
RUN useradd --create-home --uid 10001 quarterback && mkdir /data && chown quarterback /data
COPY --from=build /opt/venv /opt/venv
USER quarterback
WORKDIR /home/quarterback
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('QB_PORT', '8000')}/healthz\", timeout=2)"]
ENTRYPOINT ["quarterback"]
CMD ["serve"]
