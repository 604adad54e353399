# Image for the source-ultravox-usage Airbyte connector.
# BASE_IMAGE must stay equal to data.connectorBuildOptions.baseImage in metadata.yaml
# (unit_tests/test_packaging.py checks it). The base image ships Python 3.11 and the
# non-root user `airbyte` (uid 1000).
ARG BASE_IMAGE=docker.io/airbyte/python-connector-base:4.0.0@sha256:d9894b6895923b379f3006fa251147806919c62b7d9021b5cd125bb67d7bbe22
FROM ${BASE_IMAGE}

LABEL io.airbyte.name=airbyte/source-ultravox-usage
LABEL io.airbyte.version=0.5.1

WORKDIR /airbyte/integration_code

# Only what the installed package needs: no tests, sandbox or dev tooling.
COPY setup.py main.py ./
COPY source_ultravox_usage ./source_ultravox_usage

# Installed as root into the system site-packages; the connector then runs unprivileged.
RUN pip install --no-cache-dir .

# uid 1000 is the base image's `airbyte` user. Numeric, so Kubernetes `runAsNonRoot` can verify it.
USER 1000

ENV AIRBYTE_ENTRYPOINT="source-ultravox-usage"
ENTRYPOINT ["source-ultravox-usage"]
