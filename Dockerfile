# One image for every part of the stack: the Ray head, the Ray workers, the vidgru job and `vidgru serve`.
#
#   docker build -t vidgru:latest .                       # CPU (the default)
#   docker build -t vidgru:cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 .
#
# The CUDA variant only swaps the torch wheels: PyTorch's CUDA wheels bring their own CUDA libraries, so
# the base image stays the same and the host needs only the NVIDIA driver and container toolkit (see
# deploy/compose/docker-compose.gpu.yml). The CNN actors take the GPUs Ray reports (ray.gpus).
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY vidgru ./vidgru
COPY workers ./workers
COPY configs ./configs
COPY deploy ./deploy
# ray[default] adds the dashboard and `ray health-check` that the head's health check uses.
RUN pip install --no-cache-dir --extra-index-url "${TORCH_INDEX}" -e . "ray[default]"

ENTRYPOINT ["vidgru"]
CMD ["--help"]
