# syntax=docker/dockerfile:1
# The radpipe operator: kopf handlers that turn AnalysisJobs into one batch/v1 Job per
# stage. Build from the repository root: docker build -f images/operator.Dockerfile .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY images/requirements/constraints.txt /tmp/constraints.txt
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m venv /opt/radpipe \
    && /opt/radpipe/bin/pip install --no-cache-dir --constraint /tmp/constraints.txt .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="radpipe-operator" \
      org.opencontainers.image.description="radpipe Kubernetes operator (AnalysisJob -> stage Jobs)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 radpipe \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin radpipe
COPY --from=build /opt/radpipe /opt/radpipe
ENV PATH=/opt/radpipe/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080 8000
# kopf's liveness endpoint (the chart passes --liveness on port 8080).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["radpipe"]
CMD ["operator", "run", "--all-namespaces"]
