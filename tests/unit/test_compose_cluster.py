"""docker-compose.cluster.yml (SPEC §10), checked without a Docker engine, as test_compose.py checks the first file.

The file is used on top of docker-compose.yml (`-f docker-compose.yml -f docker-compose.cluster.yml`); it is
checked alone and merged the way Compose merges an override file: mappings key by key, volumes by their
target, anything else replaced.
"""

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from shared.broker import connection_parameters
from shared.settings import Settings
from tests.support.compose import COMPOSE, REQUIRED, SERVICES, TEST_ENV, env_example, interpolate
from tests.support.processes import ROOT

SCHEMA = Path(__file__).with_name("data") / "compose_spec.json"
RAW_TEXT = (ROOT / "docker-compose.cluster.yml").read_text()
CLUSTER: dict[str, Any] = yaml.safe_load(interpolate(RAW_TEXT, TEST_ENV))
NODES = ("rabbitmq", "rabbitmq-2", "rabbitmq-3")
AMQP_SERVICES = ("command-api", "relay", "commands", "history-worker", "notifier")


def _merge(base: Any, override: Any, key: str = "") -> Any:
    if key == "volumes" and isinstance(base, list):
        targets = {volume.split(":")[1]: volume for volume in base}
        targets.update({volume.split(":")[1]: volume for volume in override})
        return list(targets.values())
    if isinstance(base, dict) and isinstance(override, dict):
        return {
            name: _merge(base[name], value, name) if name in base else value for name, value in override.items()
        } | {name: value for name, value in base.items() if name not in override}
    return override


MERGED: dict[str, Any] = _merge(COMPOSE, CLUSTER)
MERGED_SERVICES: dict[str, dict[str, Any]] = MERGED["services"]


def test_the_file_and_the_merged_whole_are_valid_against_the_compose_specification() -> None:
    validator = jsonschema.Draft201909Validator(yaml.safe_load(SCHEMA.read_text()))
    validator.validate(CLUSTER)
    validator.validate(MERGED)


def test_the_merge_is_compose_s_own() -> None:
    """The check of the merge itself: what the cluster file does not say is docker-compose.yml's."""
    assert MERGED_SERVICES["relay"]["command"] == SERVICES["relay"]["command"]
    assert MERGED_SERVICES["relay"]["environment"]["DATABASE_URL"] == SERVICES["relay"]["environment"]["DATABASE_URL"]
    assert MERGED_SERVICES["relay"]["depends_on"]["migrate"] == SERVICES["relay"]["depends_on"]["migrate"]
    assert len(MERGED_SERVICES["rabbitmq"]["volumes"]) == len(SERVICES["rabbitmq"]["volumes"]) + 1


def test_three_rabbitmq_nodes_run_as_the_first_one_does_and_join_each_other_with_one_cookie() -> None:
    peers = re.findall(
        r"^cluster_formation\.classic_config\.nodes\.\d+ = rabbit@(\S+)$", _read("deploy/rabbitmq/cluster.conf"), re.M
    )
    assert sorted(peers) == sorted(MERGED_SERVICES[node]["hostname"] for node in NODES)
    first = MERGED_SERVICES["rabbitmq"]
    cookies = {MERGED_SERVICES[node]["environment"]["CONTACTS_ERLANG_COOKIE"] for node in NODES}
    assert cookies == {TEST_ENV["RABBITMQ_ERLANG_COOKIE"]}, "one cookie, from .env"
    assert "${RABBITMQ_ERLANG_COOKIE:?" in RAW_TEXT, "required, never a default"
    assert '"$CONTACTS_ERLANG_COOKIE" >"$cookie"' in _read("deploy/rabbitmq/start.sh"), "the node's cookie file"
    data = set()
    for node in NODES:
        service = MERGED_SERVICES[node]
        for key in ("image", "entrypoint", "command", "restart"):
            assert service[key] == first[key], f"{node}.{key}"
        assert service["environment"] == first["environment"], f"{node}: the same users and passwords"
        mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}
        assert mounts["/etc/rabbitmq/conf.d/30-cluster.conf"] == "./deploy/rabbitmq/cluster.conf"
        assert mounts["/etc/rabbitmq/contacts"] == "./deploy/rabbitmq", f"{node} loads the definitions"
        data.add(mounts["/var/lib/rabbitmq"])
        assert "ports" not in CLUSTER["services"][node], "only the first node publishes the console"
    assert len(data) == 3 and data <= set(MERGED["volumes"]), "each node keeps its data in a volume of its own"


@pytest.mark.parametrize("service", AMQP_SERVICES)
def test_every_service_that_talks_amqp_is_given_all_three_nodes_as_its_own_user(service: str) -> None:
    urls = MERGED_SERVICES[service]["environment"]["AMQP_URL"]
    alone = urlsplit(SERVICES[service]["environment"]["AMQP_URL"])
    parameters = connection_parameters(urls, service)
    assert sorted(p.host for p in parameters) == sorted(MERGED_SERVICES[node]["hostname"] for node in NODES)
    for each in parameters:
        assert (each.port, each.virtual_host) == (alone.port or 5672, "/")
        if alone.username:
            assert (each.credentials.username, each.credentials.password) == (alone.username, alone.password)
    assert {f"{node}" for node in NODES[1:]} <= set(MERGED_SERVICES[service]["depends_on"])


def test_a_streaming_replica_follows_the_primary_and_query_api_reads_from_it_as_the_read_only_role() -> None:
    replica = MERGED_SERVICES["postgres-replica"]
    script = _read("deploy/postgres/replica.sh")
    assert replica["entrypoint"] == ["sh", "/etc/postgresql/contacts/replica.sh"]
    assert "pg_basebackup --host=postgres" in script and "--write-recovery-conf" in script
    assert "hot_standby=on" in script and replica["image"] == MERGED_SERVICES["postgres"]["image"]
    assert replica["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert replica["environment"]["PGUSER"] == MERGED_SERVICES["postgres"]["environment"]["POSTGRES_USER"]
    assert replica["environment"]["PGPASSWORD"] == MERGED_SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"]
    primary = MERGED_SERVICES["postgres"]["command"]
    assert "-c max_connections=300" in primary and "max_connections=300" in script, "a standby needs as many"
    assert "-c hba_file=/etc/postgresql/contacts/pg_hba.conf" in primary
    assert re.search(r"^host\s+replication\s+all\s+all\s+scram-sha-256$", _read("deploy/postgres/pg_hba.conf"), re.M)

    environment = MERGED_SERVICES["query-api"]["environment"]
    role = Settings.model_fields["query_database_role"].default
    reads, listens = urlsplit(environment["QUERY_DATABASE_URL"]), urlsplit(environment["QUERY_IDENTITY_DATABASE_URL"])
    assert (reads.hostname, reads.username) == ("postgres-replica", role)
    assert (listens.hostname, listens.username) == ("postgres", role), "LISTEN on the primary"
    assert reads.password == listens.password == TEST_ENV["QUERY_DATABASE_PASSWORD"]
    assert not {"DATABASE_URL", "AMQP_URL"} & set(environment), "no other credentials"
    assert MERGED_SERVICES["query-api"]["depends_on"]["postgres-replica"] == {"condition": "service_healthy"}
    assert "postgres-replica-data" in MERGED["volumes"]


def test_without_a_registry_the_new_nodes_and_the_replica_run_the_first_node_s_and_the_primary_s_stand_ins() -> None:
    local = yaml.safe_load((ROOT / "docker-compose.local-images.yml").read_text())["services"]
    cluster_local = yaml.safe_load((ROOT / "docker-compose.cluster.local-images.yml").read_text())["services"]
    added = set(CLUSTER["services"]) - set(SERVICES)
    assert set(cluster_local) == added == {"rabbitmq-2", "rabbitmq-3", "postgres-replica"}
    for node in NODES[1:]:
        assert cluster_local[node] == {"image": local["rabbitmq"]["image"]}, node
    assert cluster_local["postgres-replica"] == {"image": local["postgres"]["image"]}


def test_no_password_or_guest_account_is_written_in_the_file_and_env_example_names_what_it_requires() -> None:
    assert "guest" not in RAW_TEXT.lower()
    assert set(REQUIRED.findall(RAW_TEXT)) <= set(env_example())
    assert not env_example()["RABBITMQ_ERLANG_COOKIE"], ".env.example ships no cookie"
    for name in {name for name in REQUIRED.findall(RAW_TEXT)}:
        with pytest.raises(AssertionError, match=f"{name} is required"):
            interpolate(RAW_TEXT, {key: value for key, value in TEST_ENV.items() if key != name})


def _read(path: str) -> str:
    return (ROOT / path).read_text()
