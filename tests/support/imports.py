"""Import jobs for tests: the worker started as `make run` starts it, files uploaded, jobs waited for."""

from typing import Any

import requests

from tests.support.processes import ServiceProcess, free_port, wait_until
from tests.support.stack import Launch


def start_import_worker(launch: Launch, name: str = "imports", **env: Any) -> ServiceProcess:
    port = free_port()
    env.setdefault("import_poll_seconds", 0.5)
    return launch(name, ["python", "-m", "command_api.imports"], port=port, imports_port=port, **env)


def upload(http: requests.Session, base: str, content: str | bytes, media_type: str = "text/csv") -> str:
    """Submit a file; returns its job's URL."""
    data = content.encode() if isinstance(content, str) else content
    reply = http.post(f"{base}/api/imports", data=data, headers={"Content-Type": media_type}, timeout=30)
    assert reply.status_code == 202, reply.text
    assert reply.headers["Location"] == f"/api/imports/{reply.json()['id']}"
    return f"{base}{reply.headers['Location']}"


def finished(http: requests.Session, job_url: str, timeout: float = 30) -> dict[str, Any]:
    """The job once it is no longer running."""

    def ended() -> dict[str, Any] | None:
        job = http.get(job_url, timeout=10).json()
        return job if job["status"] != "running" else None

    result: dict[str, Any] = wait_until(ended, timeout=timeout, interval=0.2, message=f"{job_url} to finish")
    return result


def import_file(
    http: requests.Session, base: str, content: str | bytes, media_type: str = "text/csv", timeout_seconds: float = 30
) -> dict[str, Any]:
    """Upload a file and wait for its job to end; returns the job."""
    return finished(http, upload(http, base, content, media_type), timeout_seconds)
