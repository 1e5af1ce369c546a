"""gunicorn for query-api: gthread workers, since every read is a short blocking query.

A thread waiting on PostgreSQL releases the GIL, so a few threads per process keep both cores busy
without gevent's monkey-patching; the pool holds one connection per thread.
"""

import os
import tempfile

from shared.settings import get_settings

_settings = get_settings()

# Set before any worker imports prometheus_client, so the workers' metrics are summed at /metrics.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="query-api-metrics-"))

bind = f"0.0.0.0:{_settings.query_api_port}"
workers = _settings.query_api_workers
worker_class = "gthread"
threads = _settings.query_api_threads
timeout = 30
keepalive = 75
accesslog = None
wsgi_app = "query_api.app:create_app()"


def child_exit(server: object, worker: object) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined,no-untyped-call]
