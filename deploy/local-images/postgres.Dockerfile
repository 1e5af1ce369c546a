# A stand-in for postgres:15 made from Debian's packages, with the official image's interface as compose and
# testcontainers use it: POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB make the cluster on the first start,
# its data in /var/lib/postgresql/data (a volume), `postgres` and `pg_isready` on the PATH, run as `postgres`.
ARG BASE_IMAGE=contacts-live/base:bookworm
FROM ${BASE_IMAGE}
# The cluster is made by the entrypoint on first start, in the volume, not by the package at install time.
RUN mkdir -p /etc/postgresql-common \
    && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql \
    && chmod 700 /var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
