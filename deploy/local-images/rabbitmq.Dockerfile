# A stand-in for rabbitmq:3.13-management made from Debian's packages (RabbitMQ 3.10) with the official image's
# interface as compose and testcontainers use it: `docker-entrypoint.sh rabbitmq-server`, the management
# plugin on 15672, /etc/rabbitmq/conf.d read, RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS, data in
# /var/lib/rabbitmq (a volume), logs on stdout, run as `rabbitmq`.
ARG BASE_IMAGE=contacts-live/base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends rabbitmq-server \
    && rm -rf /var/lib/apt/lists/* \
    && rabbitmq-plugins enable --offline rabbitmq_management >/dev/null \
    && mkdir -p /etc/rabbitmq/conf.d \
    && chown -R rabbitmq:rabbitmq /etc/rabbitmq /var/lib/rabbitmq
COPY rabbitmq-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# RabbitMQ's own scripts first: Debian's wrappers of the same names would send the log to a file, and keep the
# node from getting signals as the container's command.
ENV PATH=/usr/lib/rabbitmq/bin:$PATH \
    RABBITMQ_LOGS=- \
    RABBITMQ_CONFIG_FILES=/etc/rabbitmq/conf.d
USER rabbitmq
WORKDIR /var/lib/rabbitmq
EXPOSE 5672 15672
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["rabbitmq-server"]
