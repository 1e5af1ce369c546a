"""gunicorn for query-api: gthread workers, since every read is a short blocking query.

A thread waiting on PostgreSQL releases the GIL, so a few threads per process keep both cores busy
without gevent's monkey-patching; the pool holds one connection per thread.
"""

from shared.gunicorn_base import QuietAccessLogger, child_exit, on_exit, prepare
from shared.settings import get_settings

_settings = get_settings()

logconfig_dict = prepare("query-api", _settings.log_level)
bind = f"0.0.0.0:{_settings.query_api_port}"
workers = _settings.query_api_workers
worker_class = "gthread"
threads = _settings.query_api_threads
timeout = 30
keepalive = 75
accesslog = None
logger_class = QuietAccessLogger
wsgi_app = "query_api.app:create_app()"

__all__ = ["child_exit", "on_exit"]  # gunicorn hooks, found by name
