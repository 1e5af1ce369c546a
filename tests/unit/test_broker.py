"""AMQP_URL naming several brokers (SPEC §10): each one parsed, each tried."""

import socket

from shared.broker import broker_urls, connection_parameters
from shared.health import broker_reachable

CLUSTER = "amqp://u:p%2Cq@node-a:5672/%2F, amqp://u:p%2Cq@node-b:5673/%2F?heartbeat=5,amqp://u:p%2Cq@node-c/%2F"


def test_a_comma_separates_brokers_and_a_single_url_is_one_broker() -> None:
    assert broker_urls("amqp://localhost:5672/%2F") == ["amqp://localhost:5672/%2F"]
    assert [url.split("@")[1].split("/")[0] for url in broker_urls(CLUSTER)] == ["node-a:5672", "node-b:5673", "node-c"]


def test_every_broker_gets_the_same_settings_and_keeps_its_own_heartbeat() -> None:
    every = {(p.host, p.port): p for p in connection_parameters(CLUSTER, "test")}
    assert set(every) == {("node-a", 5672), ("node-b", 5673), ("node-c", 5672)}
    assert {p.credentials.password for p in every.values()} == {"p,q"}
    assert every[("node-b", 5673)].heartbeat == 5
    assert every[("node-a", 5672)].heartbeat == 30
    assert all(
        p.connection_attempts == 1 and p.client_properties == {"connection_name": "test"} for p in every.values()
    )


def test_the_order_varies_so_that_clients_spread_over_the_nodes() -> None:
    orders = {tuple(p.host for p in connection_parameters(CLUSTER, "test")) for _ in range(50)}
    assert len(orders) > 1


def test_a_broker_is_reachable_when_any_of_them_is() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listening:
        port = listening.getsockname()[1]
        assert not broker_reachable("amqp://127.0.0.1:1/%2F")
        assert broker_reachable(f"amqp://127.0.0.1:1/%2F,amqp://127.0.0.1:{port}/%2F")
