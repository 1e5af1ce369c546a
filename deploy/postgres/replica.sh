#!/bin/sh
# A hot standby of the primary `postgres` (docker-compose.cluster.yml): at its first start, a base backup of the
# primary streamed into the empty data directory, with the settings (-R) that make it follow the primary's WAL;
# then PostgreSQL, read-only, replaying as the primary writes. PGUSER / PGPASSWORD: a role that may replicate.
set -eu

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pg_basebackup --host=postgres --pgdata="$PGDATA" --wal-method=stream --checkpoint=fast --write-recovery-conf
    chmod 700 "$PGDATA"
fi
exec postgres -c hot_standby=on -c max_connections=300
