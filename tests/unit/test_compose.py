"""docker-compose.yml and the Dockerfiles, checked without a Docker engine.

Against the Compose Specification's JSON schema (tests/unit/data/, see its README for where it came from),
and against the repository: the Procfile's commands, the build contexts, the probes each service serves.
What only a Docker engine can show (the images build, the containers start and find each other) is not
checked here.
"""

import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from shared.settings import Settings
from tests.support.compose import (
    COMPOSE,
    RAW_TEXT,
    REQUIRED,
    SERVICES,
    TEST_ENV,
    env_example,
    interpolate,
    probe_url,
    procfile,
)
from tests.support.processes import ROOT

SCHEMA = Path(__file__).with_name("data") / "compose_spec.json"

#: Each process of ours, the Settings field naming the port its probes listen on, and the paths they serve.
FLASK_PROBES = {"/healthz", "/readyz", "/metrics", "/openapi.json"}  # shared.http.serve_common
WORKER_PROBES = {"/healthz", "/readyz", "/metrics"}  # shared.probe_server, notifier.app.routes
PROBES = {
    "command-api": ("command_api_port", FLASK_PROBES),
    "query-api": ("query_api_port", FLASK_PROBES),
    "commands": ("command_consumer_port", WORKER_PROBES),
    "imports": ("imports_port", WORKER_PROBES),
    "history-worker": ("history_worker_port", WORKER_PROBES),
    "notifier": ("notifier_port", WORKER_PROBES),
    "relay": ("relay_metrics_port", {"/metrics"}),  # prometheus_client.start_http_server
}
#: Services that are not ours to scale: one database, one broker, one gateway publishing the port, one migration.
SINGLETONS = {"postgres", "rabbitmq", "gateway", "migrate"}


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    jsonschema.Draft201909Validator.check_schema(schema)
    jsonschema.Draft201909Validator(schema).validate(COMPOSE)


def test_the_schema_refuses_a_misspelt_key_so_the_check_means_something() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    broken = {"services": {"api": {"image": "x", "healthcheck": {"intervall": "5s"}}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft201909Validator(schema).validate(broken)


def test_every_process_make_run_starts_is_a_service_running_the_same_command() -> None:
    for name, command in procfile().items():
        assert name in SERVICES, f"{name} from the Procfile is not a compose service"
        assert shlex.split(SERVICES[name]["command"]) == shlex.split(command), name
    ours = {name for name, service in SERVICES.items() if "build" in service}
    assert ours == set(procfile()) | {"migrate"}


def test_the_migrations_run_as_make_migrate_runs_them_then_the_first_admin_is_made_before_every_service() -> None:
    recipe = re.search(r"^migrate:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert recipe is not None
    ensure_admin = "python -m command_api.accounts ensure-admin"
    assert ensure_admin in (ROOT / "Makefile").read_text(), "make run makes the first admin the same way"
    assert shlex.split(SERVICES["migrate"]["command"]) == ["sh", "-c", f"{recipe.group(1)} && {ensure_admin}"]
    assert "ADMIN_PASSWORD" in SERVICES["migrate"]["environment"]
    assert "ADMIN_PASSWORD: ${ADMIN_PASSWORD:?set it in .env}" in (ROOT / "docker-compose.yml").read_text()
    assert SERVICES["migrate"]["restart"] == "no"
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in set(procfile()) - {"gateway"}:
        assert SERVICES[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name


def test_services_restart_and_the_gateway_waits_for_healthy_apis() -> None:
    for name, service in SERVICES.items():
        assert service["restart"] == ("no" if name == "migrate" else "unless-stopped"), name
    upstreams = SERVICES["gateway"]["depends_on"]
    assert upstreams == {name: {"condition": "service_healthy"} for name in ("command-api", "query-api", "notifier")}
    for name in ("postgres", "rabbitmq"):
        assert SERVICES[name]["volumes"][0].split(":")[0] in COMPOSE["volumes"], f"{name} keeps its data in a volume"


@pytest.mark.parametrize("service", sorted(PROBES))
def test_each_health_check_asks_a_real_endpoint_of_its_service_on_the_port_it_listens_on(service: str) -> None:
    field, served = PROBES[service]
    environment = SERVICES[service].get("environment", {})
    listens_on = int(environment.get(field.upper(), Settings.model_fields[field].default))
    url = urlsplit(probe_url(service))
    assert url.port == listens_on
    assert url.path in served


def test_the_gateways_health_check_asks_for_the_app_it_serves() -> None:
    url = urlsplit(SERVICES["gateway"]["healthcheck"]["test"][-1])
    gateway_sh = (ROOT / "services/web/gateway.sh").read_text()
    assert url.port == 8080 and 'LISTEN_PORT="${GATEWAY_PORT:-8080}"' in gateway_sh
    assert "GATEWAY_PORT" not in SERVICES["gateway"]["environment"], "the port inside the container stays 8080"
    assert url.path == "/" and "location / {" in (ROOT / "services/web/nginx/contacts.conf.template").read_text()
    assert SERVICES["gateway"]["ports"] == ["8080:8080"]


def test_the_database_and_broker_have_health_checks_that_their_dependents_wait_for() -> None:
    assert "pg_isready" in SERVICES["postgres"]["healthcheck"]["test"][1]
    assert SERVICES["rabbitmq"]["healthcheck"]["test"][1] == "rabbitmq-diagnostics"


def test_scaled_services_have_no_fixed_name_and_publish_no_port() -> None:
    for name, service in SERVICES.items():
        assert "container_name" not in service, name
        if name not in SINGLETONS:
            assert not {"hostname", "ports"} & set(service), f"{name} could not be scaled"
    published = {name for name, service in SERVICES.items() if "ports" in service}
    assert published == {"gateway", "rabbitmq"}
    assert SERVICES["rabbitmq"]["ports"] == ["127.0.0.1:15672:15672"], "the console, on this machine only"


def test_no_password_or_guest_account_is_written_in_the_file() -> None:
    assert "guest" not in RAW_TEXT.lower()
    secret_names = {name for name in env_example() if "PASS" in name}
    assert all(not env_example()[name] for name in secret_names), ".env.example ships no password"
    secrets = {TEST_ENV[name] for name in secret_names}
    for name, service in SERVICES.items():
        for key, value in service.get("environment", {}).items():
            password = urlsplit(value).password if "://" in str(value) else (value if "PASS" in key else None)
            assert password is None or password in secrets, f"{name}.{key}: a password from the environment"
    for name in secret_names:
        with pytest.raises(AssertionError, match=f"{name} is required"):
            interpolate(RAW_TEXT, {key: value for key, value in TEST_ENV.items() if key != name})


def test_env_example_names_every_variable_the_file_requires() -> None:
    assert set(REQUIRED.findall(RAW_TEXT)) <= set(env_example())


def test_the_query_service_connects_as_the_read_only_role_and_gets_no_other_credentials() -> None:
    environment = SERVICES["query-api"]["environment"]
    role = Settings.model_fields["query_database_role"].default
    assert urlsplit(environment["QUERY_DATABASE_URL"]).username == role
    assert f'READER_ROLE = "{role}"' in (ROOT / "shared/migrations/versions/0002_read_side.py").read_text()
    assert not {"DATABASE_URL", "AMQP_URL"} & set(environment)
    assert "QUERY_DATABASE_PASSWORD" in SERVICES["migrate"]["environment"], "migrate lets the role log in"


def dockerfile_of(service: dict[str, Any]) -> tuple[Path, Path]:
    context = ROOT / service["build"]["context"]
    return context, context / service["build"].get("dockerfile", "Dockerfile")


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` (relative to the root) out of the build context: last match wins."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]  # the path and its parents
    result = False
    for pattern in (line for line in patterns if line and not line.startswith("#")):
        body = pattern.lstrip("!").strip("/")
        glob = re.escape(body).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(glob, candidate) for candidate in candidates):
            result = not pattern.startswith("!")
    return result


def with_arguments(line: str, arguments: dict[str, str]) -> str:
    """A Dockerfile line with the build arguments given to it put in, as the builder does."""
    return re.sub(r"\$\{(\w+)\}", lambda match: arguments[match[1]], line)


BUILT = sorted(name for name, service in SERVICES.items() if "build" in service)
DOCKERFILES = sorted({str(dockerfile_of(SERVICES[name])[1]) for name in BUILT})
PYTHON_DOCKERFILE = ROOT / "services/Dockerfile"


@pytest.mark.parametrize("service", BUILT)
def test_each_build_context_dockerfile_and_copied_path_exists_and_is_not_ignored(service: str) -> None:
    context, dockerfile = dockerfile_of(SERVICES[service])
    assert context.is_dir() and dockerfile.is_file()
    assert context == ROOT, "one .dockerignore, at the root, applies"
    arguments = SERVICES[service]["build"].get("args", {})
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            for source in shlex.split(with_arguments(line, arguments))[1:-1]:
                assert (context / source).exists(), f"{dockerfile}: {source}"
                assert not ignored(source), f"{dockerfile}: {source} is left out of the context"
    assert ignored("services/web/node_modules/react/index.js") and ignored(".venv/bin/python") and ignored(".env")


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_each_image_starts_from_an_overridable_official_base_runs_unprivileged_and_bakes_no_secret(
    dockerfile: str,
) -> None:
    text = Path(dockerfile).read_text()
    defaults = dict(re.findall(r"^ARG (\w+_IMAGE)=(\S+)$", text, re.MULTILINE))
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.MULTILINE)
    for base, _ in stages:
        assert re.fullmatch(r"\$\{\w+_IMAGE\}", base), f"{base}: a base given as a build argument"
        assert re.search(r"-(slim|alpine)$", defaults[base[2:-1]]), "by default the official image, small"
    final_stage = text.rsplit("\nFROM ", 1)[-1]
    users = re.findall(r"^USER (\S+)", final_stage, re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), "a non-root user"
    assert not re.search(r"^(ENV|ARG)\b.*(PASS|SECRET|TOKEN|KEY)", text, re.MULTILINE | re.IGNORECASE)


def test_the_gateway_image_defaults_to_the_procfiles_command() -> None:
    default = re.search(r"^CMD (\[.*\])$", (ROOT / "services/web/Dockerfile").read_text(), re.MULTILINE)
    assert default is not None and yaml.safe_load(default.group(1)) == shlex.split(procfile()["gateway"])


def test_one_dockerfile_builds_each_python_service_named_by_its_argument_running_its_procfile_line() -> None:
    python_services = {name for name in BUILT if dockerfile_of(SERVICES[name])[1] == PYTHON_DOCKERFILE}
    assert python_services == set(BUILT) - {"gateway"}
    for name in python_services:
        service = SERVICES[name]["build"]["args"]["SERVICE"]
        assert (ROOT / "services" / service / "requirements.txt").is_file(), name
        assert SERVICES[name]["image"] == f"contacts-live/{service}", name
        assert service in procfile(), f"{name}: the image's default command is its service's Procfile line"
    text = PYTHON_DOCKERFILE.read_text()
    default = re.search(r"^CMD (\[.*\])$", text, re.MULTILINE)
    assert default is not None
    assert yaml.safe_load(default.group(1)) == ["sh", "-c", 'exec $(sed -n "s/^${SERVICE}: //p" Procfile)']
    assert "ENV SERVICE=${SERVICE}" in text and "COPY Procfile ./" in text


def test_the_override_for_machines_without_a_registry_builds_every_image_from_local_stand_ins() -> None:
    override = yaml.safe_load(interpolate((ROOT / "docker-compose.local-images.yml").read_text(), TEST_ENV))
    services = override["services"]
    assert set(services) == set(BUILT) | {"postgres", "rabbitmq"}
    for name in BUILT:
        text = dockerfile_of(SERVICES[name])[1].read_text()
        for argument, image in services[name]["build"]["args"].items():
            assert f"ARG {argument}=" in text, f"{name}: {argument} is a base of its Dockerfile"
            assert image.startswith("contacts-live/"), image
    build_script = (ROOT / "deploy/local-images/build.sh").read_text()
    for name in ("postgres", "rabbitmq"):
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file()
        assert services[name]["image"] in build_script, "the same tag as the stand-in testcontainers runs"
    for service in services.values():
        for image in service["build"].get("args", {}).values():
            assert image in build_script, f"{image}: made by deploy/local-images/build.sh"


#: The services that talk AMQP, and the RabbitMQ user each logs in as (deploy/rabbitmq/definitions.json).
BROKER_USERS = {
    "relay": "contacts-relay",
    "commands": "contacts-commands",
    "history-worker": "contacts-history",
    "notifier": "contacts-notifier",
}


def test_each_service_logs_in_to_rabbitmq_as_its_own_user_of_the_definitions_the_broker_loads() -> None:
    definitions = json.loads((ROOT / "deploy/rabbitmq/definitions.json").read_text())
    users = {user["name"]: user for user in definitions["users"]}
    permitted = {permission["user"] for permission in definitions["permissions"]}
    for service, user in BROKER_USERS.items():
        url = urlsplit(SERVICES[service]["environment"]["AMQP_URL"])
        assert url.username == user, service
        assert url.password == SERVICES["rabbitmq"]["environment"][f"RABBITMQ_{user.split('-')[1].upper()}_PASSWORD"]
        assert users[user]["tags"] == [] and user in permitted, f"{user}: no console, its own permissions"
    assert urlsplit(SERVICES["command-api"]["environment"]["AMQP_URL"]).username is None, "it only probes the port"
    assert users["operator"]["tags"] == ["administrator"]
    assert set(users) == {*BROKER_USERS.values(), "operator"}, "no other user, no guest"


def test_the_broker_renders_and_loads_the_definitions_at_every_start() -> None:
    rabbitmq = SERVICES["rabbitmq"]
    assert rabbitmq["entrypoint"] == ["sh", "/etc/rabbitmq/contacts/start.sh"]
    assert rabbitmq["command"] == ["docker-entrypoint.sh", "rabbitmq-server"], "then the image's own start"
    assert "./deploy/rabbitmq:/etc/rabbitmq/contacts:ro" in rabbitmq["volumes"]
    mounted_conf = "./deploy/rabbitmq/rabbitmq.conf:/etc/rabbitmq/conf.d/20-contacts.conf:ro"
    assert mounted_conf in rabbitmq["volumes"]
    conf = (ROOT / "deploy/rabbitmq/rabbitmq.conf").read_text()
    assert "load_definitions = /etc/rabbitmq/definitions.json" in conf.splitlines()
    assert "/etc/rabbitmq/definitions.json" in (ROOT / "deploy/rabbitmq/start.sh").read_text()


def test_only_the_services_that_check_tokens_get_the_signing_keys_and_compose_requires_them() -> None:
    holders = {name for name, service in SERVICES.items() if "IDENTITY_SIGNING_KEYS" in service.get("environment", {})}
    assert holders == {"command-api", "query-api", "notifier"}
    assert "${IDENTITY_SIGNING_KEYS:?set it in .env}" in (ROOT / "docker-compose.yml").read_text()
