"""``flowscope server``: MLflow's tracking server, the dashboard, the job API and a bulk
ingest endpoint in one ASGI application."""
