# CPU image for vidgru: the Ray head, the Ray workers and the vidgru job all run from it.
# For NVIDIA GPUs, build FROM an image with CUDA and install the CUDA build of torch instead
# (see README, "Running on a Ray cluster").
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY vidgru ./vidgru
COPY workers ./workers
COPY configs ./configs
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -e .

ENTRYPOINT ["vidgru"]
CMD ["--help"]
