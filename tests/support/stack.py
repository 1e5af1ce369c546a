"""Start our processes against a provisioned database and vhost, as `make run` does, on free ports."""

import json
from typing import Any, Protocol

from tests.support.identity import SIGNING_KEY
from tests.support.infra import Infra
from tests.support.limits import LIMITS_FOR_TESTS
from tests.support.processes import ServiceProcess, free_port


class Launch(Protocol):
    def __call__(self, name: str, argv: list[str], health_path: str | None = ..., **env: Any) -> ServiceProcess: ...


class Stack:
    """Processes started for one scope; `stop` ends them in reverse order."""

    def __init__(self, infra: Infra) -> None:
        self._infra = infra
        self.processes: list[ServiceProcess] = []

    def launch(self, name: str, argv: list[str], health_path: str | None = "/healthz", **env: Any) -> ServiceProcess:
        port = env.pop("port")
        settings = {
            "DATABASE_URL": self._infra.database_url,
            "AMQP_URL": self._infra.amqp_url,
            "IDENTITY_SIGNING_KEYS": json.dumps([SIGNING_KEY]),
            "LOG_LEVEL": "INFO",
            **LIMITS_FOR_TESTS,
        }
        settings.update({key.upper(): str(value) for key, value in env.items()})
        health = f"http://127.0.0.1:{port}{health_path}" if health_path else None
        process = ServiceProcess(name, argv, settings, health)
        self.processes.append(process)  # before it starts: one that never becomes healthy is still stopped
        return process.start()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()


def start_command_api(launch: Launch, name: str = "command-api", **env: Any) -> str:
    """Start command-api under gunicorn; returns its base URL."""
    port = free_port()
    env.setdefault("command_api_workers", 2)
    launch(name, ["gunicorn", "-c", "services/command-api/gunicorn.conf.py"], port=port, command_api_port=port, **env)
    return f"http://127.0.0.1:{port}"


def start_relay(launch: Launch, name: str = "relay", **env: Any) -> ServiceProcess:
    port = free_port()
    return launch(name, ["python", "-m", "command_api.relay"], "/metrics", port=port, relay_metrics_port=port, **env)
