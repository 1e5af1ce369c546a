"""Readiness probes of the things a service depends on."""

import socket
from typing import Any
from urllib.parse import urlsplit

from psycopg import Connection
from psycopg_pool import ConnectionPool

from shared.broker import broker_urls


def database_ready(pool: ConnectionPool[Connection[Any]]) -> bool:
    try:
        with pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


def broker_reachable(amqp_url: str) -> bool:
    """Whether any of the brokers AMQP_URL names takes a TCP connection."""
    for url in broker_urls(amqp_url):
        parts = urlsplit(url)
        try:
            with socket.create_connection((parts.hostname or "localhost", parts.port or 5672), timeout=2):
                return True
        except OSError:
            continue
    return False
