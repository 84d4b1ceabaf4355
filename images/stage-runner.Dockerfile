# syntax=docker/dockerfile:1
# The stage runner: what every stage Job's pod runs (`radpipe stage run --job NS/NAME
# --stage S`). Carries dcm2niix (preprocess), the series classifier (catboost), ONNX
# Runtime for in-process models, fonts for the PDF report.
# Build from the repository root: docker build -f images/stage-runner.Dockerfile .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY images/requirements/constraints.txt /tmp/constraints.txt
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m venv /opt/radpipe \
    && /opt/radpipe/bin/pip install --no-cache-dir --constraint /tmp/constraints.txt \
        . catboost onnxruntime psycopg-binary

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="radpipe-stage-runner" \
      org.opencontainers.image.description="radpipe pipeline stages (one per Kubernetes Job)" \
      org.opencontainers.image.licenses="Apache-2.0"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Runtime libraries only: dcm2niix (Debian 12's build) and the report's fonts.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        dcm2niix=1.0.20220720-1+deb12u1 \
        fonts-liberation=1:1.07.4-11 \
        fonts-dejavu-core=2.37-6 \
        libgomp1=12.2.0-14+deb12u1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 radpipe \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin radpipe
COPY --from=build /opt/radpipe /opt/radpipe
# The series classifier and model cards (infer itself calls KServe in the cluster).
COPY models /opt/radpipe-models
ENV PATH=/opt/radpipe/bin:$PATH \
    HOME=/tmp \
    RADPIPE_MODELS__DIR=/opt/radpipe-models \
    RADPIPE_DATA_DIR=/tmp/radpipe \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
# A stage is a batch process with no server to probe: no HEALTHCHECK (Kubernetes Jobs
# judge it by its exit status).
ENTRYPOINT ["radpipe"]
CMD ["stage", "list"]
