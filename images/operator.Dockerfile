# Operator and stage-runner image (minimal for now; the deployment issue hardens it).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir . && useradd --uid 10001 radpipe
USER 10001
ENTRYPOINT ["radpipe"]
