# The gateway's container image. `make image` builds it with podman on a base made from
# Debian's packages (deploy/images/base.sh); where a registry is reachable:
#   make wheelhouse && docker build -t engine-gateway:0.1.0 .
#
# The wheels are built on the host (`make wheelhouse`: the project and the versions its
# tests ran with, and pip's own wheel), so nothing is downloaded inside the build. Two
# stages: the first installs those wheels into a virtualenv with no pip of its own (pip runs
# from its wheel, offline), the second copies only that virtualenv onto the same base: no
# compiler, no pip, no sources, no wheels in the image. The command is the console script
# `engine-gateway`, the same one every test starts (tests/processes.py: GATEWAY_COMMAND),
# configured by ENGINE_GATEWAY_* variables.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
COPY build/wheelhouse /wheels
RUN python3 -m venv --without-pip /opt/engine-gateway \
    && pip_wheel="$(echo /wheels/pip-*.whl)" \
    && /opt/engine-gateway/bin/python "$pip_wheel/pip" install --quiet --no-index \
        --no-cache-dir --disable-pip-version-check --find-links /wheels engine-gateway

FROM ${BASE}
# A base that brings pip along (python:3.11-slim) loses it; Debian's python3 has none.
RUN if python3 -m pip --version >/dev/null 2>&1; then \
        python3 -m pip uninstall --yes --quiet pip setuptools wheel; fi
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
