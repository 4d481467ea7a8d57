# The gateway's container image:  docker build -t engine-gateway .
#
# Two stages: the first installs the package into a virtualenv, the second copies only that
# virtualenv onto the same slim Python base: no compiler, no pip, no sources in the image.
# The command is the console script `engine-gateway`, the same one every test starts
# (tests/processes.py: GATEWAY_COMMAND), configured by ENGINE_GATEWAY_* variables.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN python -m venv /opt/engine-gateway \
    && /opt/engine-gateway/bin/pip install . \
    && /opt/engine-gateway/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
RUN python -m pip uninstall --yes pip setuptools wheel
COPY --from=build /opt/engine-gateway /opt/engine-gateway
# Listen on every interface inside the container (the default outside one is loopback);
# no .pyc writes at run time, so the root filesystem can be read-only.
ENV PATH=/opt/engine-gateway/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENGINE_GATEWAY_HOST=0.0.0.0 \
    ENGINE_GATEWAY_ADMIN_HOST=0.0.0.0
USER 10001:10001
EXPOSE 8000 8001
HEALTHCHECK --interval=10s --timeout=3s \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8001/livez', timeout=2)"]
ENTRYPOINT ["engine-gateway"]
