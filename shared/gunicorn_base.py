"""What every gunicorn configuration of ours shares: its worker, metrics summed across workers, and JSON logs."""

import json
import logging
import os
import shutil
import socket
import tempfile
from typing import Any

from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.workers.ggevent import GeventWorker

from shared.logs import logging_config

_own_metrics_dirs: list[str] = []  # made by prepare(), removed by on_exit()

#: A setting, for each gunicorn.conf.py to import: no control socket (gunicorn 25 and later open one at
#: a path per user, which command-api, query-api and every test stack on the machine would share).
control_socket_disable = True


class QuietAccessLogger(Logger):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn's logger, except that an access-log line is built only when `gunicorn.access` would print it.

    gunicorn builds every line whenever a logging config is given, even one that silences the access log.
    """

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)


class ProblemWorker(GeventWorker):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn's gevent worker, whose own error replies are RFC 9457 problems like the application's.

    gunicorn answers some requests itself, before the app sees them: a request line over
    `limit_request_line` (414), too many or too large headers (431), a malformed request line, header or
    chunk (400), an `Expect` it cannot meet (417), a transfer coding it does not know (501). Its worker's
    `handle_error` decides the status and message, then writes them with `gunicorn.util.write_error`, an
    HTML page, which it looks up at each call: in a worker of ours that page is a problem instead.
    """

    def init_process(self) -> None:
        util.write_error = write_problem
        super().init_process()


def write_problem(sock: socket.socket, status: int, reason: str, message: str) -> None:
    """Write gunicorn's error reply as problem+json (a drop-in for `gunicorn.util.write_error`)."""
    body = json.dumps({"type": "about:blank", "title": reason, "status": status, "detail": message or reason})
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, (head + body).encode("ascii"))


def prepare(service: str, log_level: str) -> dict[str, Any]:
    """Call at the top of a gunicorn.conf.py; returns its `logconfig_dict` (use it with QuietAccessLogger).

    The metrics directory is set before any worker imports prometheus_client, so that `/metrics`
    of any worker reports the sum over all of them.
    """
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        directory = tempfile.mkdtemp(prefix=f"{service}-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        _own_metrics_dirs.append(directory)
    return logging_config(service, log_level)


def on_exit(server: object) -> None:
    """gunicorn hook: remove the metrics directory `prepare` made, when the server stops."""
    for directory in _own_metrics_dirs:
        shutil.rmtree(directory, ignore_errors=True)


def child_exit(server: object, worker: Any) -> None:
    """gunicorn hook: forget the metrics of a worker that is gone."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
