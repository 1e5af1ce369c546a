"""docker-compose.yml as `docker compose` reads it, with .env.example filled in: for the tests that check it."""

import re
from typing import Any

import yaml

from tests.support.processes import ROOT

#: `${NAME}`, `${NAME:-default}`, `${NAME:?error}` and the escape `$$`, as Compose interpolates them.
VARIABLE = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:[-?])(?P<arg>[^}]*))?\}")
REQUIRED = re.compile(r"\$\{(\w+):\?[^}]*\}")


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def interpolate(text: str, env: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        given = env.get(match["name"], "")
        if match["op"] == ":?" and not given:
            raise AssertionError(f"{match['name']} is required: {match['arg']}")
        return given or (match["arg"] if match["op"] == ":-" else "")

    return VARIABLE.sub(value, text)


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


#: As `docker compose` would see it with .env.example filled in (empty passwords given a value).
TEST_ENV = {name: value or f"test-{name.lower()}" for name, value in env_example().items()}
RAW_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(interpolate(RAW_TEXT, TEST_ENV))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def probe_url(service: str) -> str:
    """The URL a service's health check asks for (the last argument of its test)."""
    test = SERVICES[service]["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] == "CMD", f"{service}: an exec-form health check"
    assert test[-1].startswith("http://127.0.0.1:"), test
    return str(test[-1])
