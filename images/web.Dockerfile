# syntax=docker/dockerfile:1
# The web app (FastAPI): clinicians submit AnalysisJobs and read reports.
# Build from the repository root: docker build -f images/web.Dockerfile .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY images/requirements/constraints.txt /tmp/constraints.txt
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m venv /opt/radpipe \
    && /opt/radpipe/bin/pip install --no-cache-dir --constraint /tmp/constraints.txt \
        . psycopg-binary

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="radpipe-web" \
      org.opencontainers.image.description="radpipe web app: submit jobs, follow them, read reports" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 radpipe \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin radpipe
COPY --from=build /opt/radpipe /opt/radpipe
ENV PATH=/opt/radpipe/bin:$PATH \
    HOME=/tmp \
    RADPIPE_DATA_DIR=/var/lib/radpipe \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["radpipe"]
CMD ["web", "--host", "0.0.0.0", "--port", "8000", "--cluster"]
