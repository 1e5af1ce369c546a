"""gunicorn for command-api: gevent workers hold thousands of deferred create replies without a process each."""

import resource

from shared.gunicorn_base import QuietAccessLogger, child_exit, control_socket_disable, on_exit, prepare
from shared.settings import get_settings

_settings = get_settings()

logconfig_dict = prepare("command-api", _settings.log_level)
bind = f"0.0.0.0:{_settings.command_api_port}"
workers = _settings.command_api_workers
# gunicorn's gevent worker (ours: gunicorn's own error replies are problems) rather than gevent's pywsgi: a
# held reply costs 22 KiB instead of 27.5 KiB (3,000 held by one worker), for about 5% more CPU per
# keep-alive PATCH (docs/benchmarks.md, S4).
worker_class = "shared.gunicorn_base.ProblemWorker"
worker_connections = _settings.command_api_worker_connections
# Every timeout stays above the deferral of create replies.
timeout = int(_settings.create_reply_delay_seconds) + 30
graceful_timeout = int(_settings.create_reply_delay_seconds) + 10
keepalive = 75
# Room for bursts of new connections while the workers are busy (the kernel caps it at somaxconn).
backlog = 4096
accesslog = None
logger_class = QuietAccessLogger
wsgi_app = "command_api.app:create_app()"

__all__ = ["child_exit", "control_socket_disable", "on_exit", "on_starting"]  # gunicorn finds these by name


def on_starting(server: object) -> None:
    # Each held reply is a socket: allow as many as the hard limit permits.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
