"""Start the read side's processes, as `make run` does, on free ports."""

from typing import Any

from tests.support.processes import ServiceProcess, free_port
from tests.support.stack import Launch


def start_query_api(launch: Launch, name: str = "query-api", **env: Any) -> str:
    """Start query-api under gunicorn; returns its base URL."""
    port = free_port()
    env.setdefault("query_api_workers", 1)
    launch(name, ["gunicorn", "-c", "services/query-api/gunicorn.conf.py"], port=port, query_api_port=port, **env)
    return f"http://127.0.0.1:{port}"


def start_history_worker(launch: Launch, name: str = "history-worker", **env: Any) -> tuple[ServiceProcess, str]:
    """Start the history worker; returns it and the base URL of its probes."""
    port = free_port()
    process = launch(name, ["python", "-m", "history_worker"], "/readyz", port=port, history_worker_port=port, **env)
    return process, f"http://127.0.0.1:{port}"
