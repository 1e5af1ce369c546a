"""gunicorn for command-api: gevent workers hold thousands of deferred create replies without a process each."""

import os
import resource
import tempfile

from shared.settings import get_settings

_settings = get_settings()

# Set before any worker imports prometheus_client, so the workers' metrics are summed at /metrics.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="command-api-metrics-"))

bind = f"0.0.0.0:{_settings.command_api_port}"
workers = _settings.command_api_workers
# gevent's own WSGI server: the same green model, measurably less CPU per request than gunicorn's parser.
worker_class = "gunicorn.workers.ggevent.GeventPyWSGIWorker"
worker_connections = _settings.command_api_worker_connections
# Every timeout stays above the deferral of create replies.
timeout = int(_settings.create_reply_delay_seconds) + 30
graceful_timeout = int(_settings.create_reply_delay_seconds) + 10
keepalive = 75
accesslog = None
wsgi_app = "command_api.app:create_app()"


def on_starting(server: object) -> None:
    # Each held reply is a socket: allow as many as the hard limit permits.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def child_exit(server: object, worker: object) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined,no-untyped-call]
