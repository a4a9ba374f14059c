FROM python:3.11-slim
# daphne listens on every interface: the start-up checks then refuse a published SECRET_KEY.
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 FLOWS_LISTEN_HOST=0.0.0.0
WORKDIR /app
# Embedded MQTT runs this real Mosquitto as a child process (amqtt is only the fallback).
RUN apt-get update && apt-get install -y --no-install-recommends mosquitto && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
# Hashed, compressed static files in the image, so a container starts without compressing plotly.
RUN python manage.py collectstatic --noinput -v 0
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "dashboard.asgi:application"]
