"""What every gunicorn configuration of ours shares: metrics summed across workers, and JSON logs."""

import logging
import os
import shutil
import tempfile
from typing import Any

from gunicorn.glogging import Logger

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
