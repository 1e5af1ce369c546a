"""The harness cleans up after itself: no process outlives its stack, no database or vhost outlives its run."""

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.support import processes
from tests.support.infra import Infra, Provisioner, run_label
from tests.support.processes import free_port
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_a_process_that_never_becomes_healthy_is_stopped_with_its_stack(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processes, "TIMEOUT_FACTOR", 0.1)  # give up on its health check after 3 s, not 30
    stack = Stack(infra)
    port = free_port()
    server = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with pytest.raises(AssertionError, match="never-healthy to be healthy"):
        stack.launch("never-healthy", server, "/no-such-page", port=port)  # listening, but answers 404
    assert listening(port), "it started"
    stack.stop()
    assert not listening(port), "stopped with its stack"


@pytest.fixture
def provisioner(infra: Infra) -> Provisioner:
    return Provisioner(infra.database_url, infra.management_url, infra.amqp_user, infra.amqp_password)


@pytest.fixture
def names(provisioner: Provisioner) -> Iterator[list[str]]:
    """Names of databases and vhosts a test makes; whatever is left of them is dropped after it."""
    made: list[str] = []
    yield made
    for name in made:
        provisioner.drop(name)


def ended_pid() -> int:
    """The pid of a process of this host that has ended."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    return int(child.stdout)


def test_dropping_a_run_s_database_and_vhost_tries_each_even_when_the_other_fails(
    provisioner: Provisioner, infra: Infra, names: list[str]
) -> None:
    name = f"contacts_test_{uuid.uuid4().hex[:10]}"
    names.append(name)
    provisioner.create(name, run_label())
    no_broker = Provisioner(infra.database_url, f"http://127.0.0.1:{free_port()}", "guest", "guest")
    with pytest.raises(requests.ConnectionError):
        no_broker.drop(name)
    assert name not in provisioner.databases(), "the database is dropped though the vhost could not be deleted"
    assert name in provisioner.vhosts()


def test_a_sweep_removes_what_ended_runs_of_this_host_left_and_nothing_of_live_or_foreign_runs(
    provisioner: Provisioner, names: list[str]
) -> None:
    ended, live, foreign, unlabelled = (f"contacts_test_{uuid.uuid4().hex[:10]}" for _ in range(4))
    names.extend([ended, live, foreign, unlabelled])
    provisioner.create(ended, run_label(ended_pid()))
    provisioner.create(live, run_label())
    provisioner.create(foreign, run_label(ended_pid()).replace('"host": "', '"host": "elsewhere-'))
    provisioner.create(unlabelled, "")

    removed = provisioner.sweep()

    assert removed.count(ended) == 2, "its database and its vhost"
    assert not {live, foreign, unlabelled} & set(removed)
    for remaining in (provisioner.databases(), provisioner.vhosts()):
        assert ended not in remaining
        assert {live, foreign, unlabelled} <= set(remaining)
