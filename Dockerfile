# One image for every Kexin service; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY dataspace dataspace
COPY connector connector
COPY broker broker
COPY identity identity
COPY policy policy
COPY ledger ledger
COPY matching matching
COPY storage storage
COPY service service
RUN pip install --no-cache-dir . && useradd --system --home /app kexin
USER kexin
