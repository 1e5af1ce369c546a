"""gunicorn for query-api: gevent workers, since every read is a few short queries.

While one request waits on PostgreSQL, its worker serves others; the requests of a worker share its
pool of DB_POOL_MAX_SIZE connections. gevent's workers took 12 to 30 % less CPU per list page than
gthread's (its thread pool's hand-offs and the GIL between threads), measured side by side on S6's data.
"""

from shared.gunicorn_base import QuietAccessLogger, child_exit, control_socket_disable, on_exit, prepare
from shared.settings import get_settings

_settings = get_settings()

logconfig_dict = prepare("query-api", _settings.log_level)
bind = f"0.0.0.0:{_settings.query_api_port}"
workers = _settings.query_api_workers
worker_class = "shared.gunicorn_base.ProblemWorker"  # gevent's, with gunicorn's own error replies as problems
worker_connections = _settings.query_api_worker_connections
timeout = 30
keepalive = 75
accesslog = None
logger_class = QuietAccessLogger
wsgi_app = "query_api.app:create_app()"

__all__ = ["child_exit", "control_socket_disable", "on_exit"]  # gunicorn finds these by name
