# flowscope: the tracking server with the dashboard, a job worker or a prediction service,
# by the command given (see compose.yaml). Built from this repository:
#   docker build -t flowscope .
#   docker run -p 5000:5000 flowscope    # alone: SQLite and artifacts in /var/lib/flowscope
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# libgomp: the OpenMP runtime LightGBM and XGBoost load; curl: the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[postgres,explain,tune]"

# The folders volumes are mounted on exist here, owned by the user the services run as, so
# that a new volume takes that owner.
RUN useradd --create-home --uid 10001 flowscope \
    && mkdir -p /var/lib/flowscope/journal /var/lib/flowscope/workbench \
    && chown -R flowscope:flowscope /var/lib/flowscope
USER flowscope
WORKDIR /var/lib/flowscope
ENV FLOWSCOPE_JOURNAL_DIR=/var/lib/flowscope/journal \
    FLOWSCOPE_WORKBENCH_DIR=/var/lib/flowscope/workbench \
    MLFLOW_BACKEND_STORE_URI=sqlite:////var/lib/flowscope/mlflow.db

EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${PORT:-5000}/health" || exit 1

CMD ["flowscope", "server", "--host", "0.0.0.0", "--port", "5000"]
