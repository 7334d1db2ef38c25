# One image for the three services and the simulators; the command picks which one runs.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends curl espeak-ng \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY generated ./generated
COPY simulators ./simulators
RUN pip install .
COPY prompts ./prompts
COPY migrations ./migrations
COPY alembic.ini ./
COPY scripts ./scripts
COPY specs ./specs
EXPOSE 8001 8002 8003
CMD ["python", "-m", "services.client_api"]
