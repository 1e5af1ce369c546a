# A stand-in for nginx:1.28-alpine made from Debian's packages: nginx (Debian 12's is 1.22, which resolves an
# upstream's name once, at start: services/web/gateway.sh), envsubst, wget for the health check, and the
# unprivileged user `nginx` of the official image.
ARG BASE_IMAGE=contacts-live/base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx-light gettext-base wget \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 101 --user-group --no-create-home --shell /usr/sbin/nologin nginx
CMD ["nginx", "-g", "daemon off;"]
