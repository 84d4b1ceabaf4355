# syntax=docker/dockerfile:1
# radpipe's model server: a KServe ModelServer (V2 protocol) over ONNX Runtime, used by the
# chart's ServingRuntime. Two final targets:
#   docker build -f images/model-server.Dockerfile --target cpu .
#   docker build -f images/model-server.Dockerfile --target gpu .   (CUDA 12 / cuDNN 9 from
#     pip; the host's NVIDIA driver arrives through the NVIDIA container toolkit)
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build-cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY images/requirements/constraints.txt /tmp/constraints.txt
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m venv /opt/radpipe \
    && /opt/radpipe/bin/pip install --no-cache-dir --constraint /tmp/constraints.txt \
        . kserve onnxruntime

FROM ${PYTHON_IMAGE} AS build-gpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY images/requirements/constraints.txt /tmp/constraints.txt
COPY images/requirements/serving-gpu.txt /tmp/serving-gpu.txt
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m venv /opt/radpipe \
    && /opt/radpipe/bin/pip install --no-cache-dir --constraint /tmp/constraints.txt \
        . kserve --requirement /tmp/serving-gpu.txt

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="radpipe-model-server" \
      org.opencontainers.image.description="KServe V2 model server for radpipe's ONNX models" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 radpipe \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin radpipe
ENV PATH=/opt/radpipe/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=4)"]
ENTRYPOINT ["radpipe"]
CMD ["serve-models", "--models-dir", "/mnt/models", "--http-port", "8080", "--no-grpc"]

FROM runtime AS gpu
COPY --from=build-gpu /opt/radpipe /opt/radpipe
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001

FROM runtime AS cpu
COPY --from=build-cpu /opt/radpipe /opt/radpipe
USER 10001:10001
