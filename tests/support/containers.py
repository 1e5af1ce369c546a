"""The whole stack in containers, as a user runs it: docker-compose.yml with docker-compose.local-images.yml.

Each run is a compose project of its own (`contacts-test-<random>`) with an env file of its own (generated
passwords and keys, free ports on this machine for the gateway and RabbitMQ's console), so it never meets
the machine's own PostgreSQL and RabbitMQ, nor another run. Everything is reached through the published ports
on 127.0.0.1 or with `docker exec`, never at a container's address.
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

from tests.support.processes import ROOT, free_port, wait_until

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.local-images.yml")
#: The cluster variant (SPEC §10): three RabbitMQ nodes and a PostgreSQL replica, on the same stand-ins.
CLUSTER_FILES = (
    "docker-compose.yml",
    "docker-compose.cluster.yml",
    "docker-compose.local-images.yml",
    "docker-compose.cluster.local-images.yml",
)
#: The stand-ins deploy/local-images/build.sh makes, which the override's builds start FROM.
STAND_INS = (
    "contacts-live/python:3.11-slim",
    "contacts-live/node:22-slim",
    "contacts-live/nginx:1.22",
    "contacts-live/postgres:15",
    "contacts-live/rabbitmq:3.10-management",
)
#: What the images are called once built (docker-compose.yml's `image:` of each service we build).
OUR_IMAGES = (
    "contacts-live/command-api",
    "contacts-live/query-api",
    "contacts-live/history-worker",
    "contacts-live/notifier",
    "contacts-live/gateway",
)
#: The classic builder: Debian 12's Docker engine comes without BuildKit's buildx.
BUILD_ENV = {"DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"}


def compose_program() -> list[str] | None:
    """`docker-compose` (v1), else the `docker compose` plugin (v2), else None."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and run(["docker", "compose", "version"], check=False).returncode == 0:
        return ["docker", "compose"]
    return None


def run(argv: list[str], check: bool = True, timeout: float = 600, **options: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, **BUILD_ENV}, **options
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def docker_missing() -> str | None:
    """Why the stack cannot run here, or None when it can."""
    if not shutil.which("docker"):
        return "no docker client (make compose-test installs docker.io)"
    if run(["docker", "info"], check=False, timeout=30).returncode != 0:
        return "no Docker engine answers (make compose-test starts dockerd where it can)"
    if compose_program() is None:
        return "no docker-compose nor `docker compose` (make compose-test installs docker-compose)"
    absent = [image for image in STAND_INS if not image_exists(image)]
    if absent:
        return f"stand-in images missing: {', '.join(absent)} (deploy/local-images/build.sh makes them)"
    return None


def image_exists(image: str) -> bool:
    return run(["docker", "image", "inspect", image], check=False).returncode == 0


def image_sizes() -> dict[str, int]:
    """Megabytes of each image of ours."""
    return {
        image: round(int(run(["docker", "image", "inspect", "--format", "{{.Size}}", image]).stdout) / 1e6)
        for image in OUR_IMAGES
    }


def generated_env(project: str) -> dict[str, str]:
    """A .env as a user fills it in: every password random, the ports free on this machine, a short delay."""
    names = ["POSTGRES_PASSWORD", "QUERY_DATABASE_PASSWORD", "ADMIN_PASSWORD"]
    names += [f"RABBITMQ_{user}_PASSWORD" for user in ("OPERATOR", "RELAY", "COMMANDS", "HISTORY", "NOTIFIER")]
    return {
        "COMPOSE_PROJECT_NAME": project,
        "POSTGRES_USER": "contacts",
        **{name: secrets.token_hex(16) for name in names},
        "IDENTITY_SIGNING_KEYS": json.dumps([secrets.token_hex(32)]),
        "RABBITMQ_ERLANG_COOKIE": secrets.token_hex(32),
        "ADMIN_USERNAME": "admin",
        "GATEWAY_PORT": str(free_port()),
        "RABBITMQ_CONSOLE_PORT": str(free_port()),
        "CREATE_REPLY_DELAY_SECONDS": "2",
        "LOG_LEVEL": "INFO",
    }


class ComposeStack:
    """One compose project: its env file, and what `docker-compose` and `docker` say about its containers."""

    def __init__(self, directory: Path, files: tuple[str, ...] = COMPOSE_FILES) -> None:
        program = compose_program()
        assert program is not None
        self.project = f"contacts-test-{uuid.uuid4().hex[:8]}"
        self.env = generated_env(self.project)
        self.env_file = directory / "stack.env"
        self.env_file.write_text("".join(f"{name}={value}\n" for name, value in self.env.items()))
        arguments = [argument for name in files for argument in ("-f", str(ROOT / name))]
        self._compose = [*program, "--project-name", self.project, "--env-file", str(self.env_file), *arguments]
        self.url = f"http://127.0.0.1:{self.env['GATEWAY_PORT']}"
        self.console_url = f"http://127.0.0.1:{self.env['RABBITMQ_CONSOLE_PORT']}"

    def compose(self, *arguments: str, timeout: float = 600) -> str:
        return run([*self._compose, *arguments], cwd=ROOT, timeout=timeout).stdout

    def containers(self, service: str | None = None, every: bool = False) -> list[str]:
        """Ids of the project's containers (of one service), running ones unless `every`."""
        labels = [f"com.docker.compose.project={self.project}"]
        labels += [f"com.docker.compose.service={service}"] if service else []
        filters = [argument for label in labels for argument in ("--filter", f"label={label}")]
        return run(["docker", "ps", "--quiet", "--no-trunc", *(["--all"] if every else []), *filters]).stdout.split()

    def inspect(self, container: str) -> dict[str, Any]:
        document: list[dict[str, Any]] = json.loads(run(["docker", "inspect", container]).stdout)
        return document[0]

    def states(self) -> dict[str, str]:
        """Each container's name and its health (or, without a health check, its status and exit code)."""
        states = {}
        for container in self.containers(every=True):
            state = self.inspect(container)
            health = state["State"].get("Health")
            states[state["Name"].lstrip("/")] = (
                health["Status"] if health else f"{state['State']['Status']} {state['State']['ExitCode']}"
            )
        return states

    def wait_healthy(self, timeout: float = 240) -> dict[str, str]:
        def settled() -> dict[str, str] | None:
            states = self.states()
            done = all(state in ("healthy", "exited 0") for state in states.values())
            return states if done and states else None

        try:
            result: dict[str, str] = wait_until(settled, timeout=timeout, interval=1, message="every container healthy")
        except AssertionError:
            raise AssertionError(f"not all healthy: {self.states()}\n{self.logs()}") from None
        return result

    def exec(self, container: str, *command: str, stdin: str | None = None, timeout: float = 60) -> str:
        return run(["docker", "exec", "-i", container, *command], input=stdin, timeout=timeout).stdout

    def logs_of(self, container: str) -> str:
        result = run(["docker", "logs", container])
        return result.stdout + result.stderr

    def crash(self, container: str) -> None:
        """Kill the container's first process as a crash would (SIGKILL from outside): its restart policy applies."""
        os.kill(self.inspect(container)["State"]["Pid"], signal.SIGKILL)

    def logs(self, tail: int = 30) -> str:
        return run([*self._compose, "logs", "--no-color", f"--tail={tail}"], cwd=ROOT, check=False).stdout

    def leftovers(self) -> dict[str, list[str]]:
        """The project's containers, volumes and networks that still exist."""
        label = f"label=com.docker.compose.project={self.project}"
        return {
            "containers": self.containers(every=True),
            "volumes": run(["docker", "volume", "ls", "--quiet", "--filter", label]).stdout.split(),
            "networks": run(["docker", "network", "ls", "--quiet", "--filter", label]).stdout.split(),
        }

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", timeout=180)
