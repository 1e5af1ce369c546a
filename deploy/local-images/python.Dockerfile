# A stand-in for python:3.11-slim made from Debian's packages: Python 3.11 with its venv module, as python3.
ARG BASE_IMAGE=contacts-live/base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/*
# pip's own certificate list does not know this machine's authorities: the base's list (base.sh) instead.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
