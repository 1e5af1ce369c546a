"""`python -m history_worker`: consume events forever, reconnecting with capped backoff; probes on a port."""

import logging
import signal
import sys

import psycopg
from pika.exceptions import AMQPError
from prometheus_client import Gauge
from tenacity import Retrying, before_sleep_log, retry_if_exception_type, wait_random_exponential

from history_worker.consumer import Status, consume
from shared.logs import configure_logging
from shared.probe_server import serve_probes
from shared.settings import get_settings

log = logging.getLogger("history_worker")

LAG = Gauge("history_worker_lag_seconds", "Now minus the time of the newest event recorded (0 before the first)")

_RETRIED = (psycopg.OperationalError, psycopg.InterfaceError, AMQPError, OSError)


def main() -> None:
    settings = get_settings()
    configure_logging("history-worker", settings.log_level)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    status = Status()
    LAG.set_function(status.lag_seconds)
    serve_probes(settings.history_worker_port, status.readiness)
    retrying = Retrying(
        retry=retry_if_exception_type(_RETRIED),
        wait=wait_random_exponential(multiplier=0.2, max=settings.history_max_backoff_seconds),
        before_sleep=before_sleep_log(log, logging.WARNING),
    )
    retrying(consume, settings, status)


if __name__ == "__main__":
    main()
