"""The fault matrix (SPEC §9): a workload runs while each fault strikes in turn; the checker counts what broke.

`make test` runs a short pass of every fault; `make faults` runs the same matrix with longer faults
(`FAULT_SECONDS`) and writes the table to test-artifacts/fault-matrix.json for docs/reliability.md.
Targets, for every fault: nothing lost, doubled, missing or stuck, no WebSocket client with a gap,
no 5xx but 503 with Retry-After, and every process ready within RECOVERY_LIMIT_SECONDS of the fault's
healing.
"""

import json
import os
import time
from collections.abc import Iterator

import pytest

from tests.support.checker import Checker, Report, Tap
from tests.support.faults import FAULTS, Fault, System, running_system
from tests.support.processes import LOGS, TIMEOUT_FACTOR, wait_until
from tests.support.servers import available
from tests.support.workload import Workload

#: How long a lasting fault (a cut) lasts, and how long the workload runs before and after each fault.
FAULT_SECONDS = float(os.environ.get("FAULT_SECONDS", "3"))
RECOVERY_LIMIT_SECONDS = 10.0 * TIMEOUT_FACTOR
RESULTS = LOGS.parent / "fault-matrix.json"

pytestmark = pytest.mark.skipif(available() is not None, reason=f"private servers cannot run here: {available()}")


@pytest.fixture(scope="module")
def system() -> Iterator[System]:
    with running_system() as system:
        yield system


@pytest.fixture(scope="module")
def checker(system: System) -> Iterator[Checker]:
    tap = Tap(system.amqp_url)
    yield Checker(system.database_url, system.amqp_url, tap)
    tap.close()


@pytest.fixture(scope="module")
def results() -> Iterator[list[dict[str, object]]]:
    rows: list[dict[str, object]] = []
    yield rows
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"fault_seconds": FAULT_SECONDS, "faults": rows}, indent=2))


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
def test_no_acknowledged_write_is_lost_or_doubled_and_every_client_resumes(
    fault: Fault, system: System, checker: Checker, results: list[dict[str, object]]
) -> None:
    wait_until(system.ready, timeout=60, interval=0.2, message="every process ready before the fault")
    window = checker.open_window()
    workload = Workload(system.command_api, system.query_api, system.notifiers, system.amqp_url, system.token).start()
    time.sleep(FAULT_SECONDS)
    fault.strike(system, FAULT_SECONDS)
    healed = time.monotonic()
    # query-api's pool sat idle through the fault: before any probe touches it, its first read must succeed.
    first_read = system.answer(lambda http: http.get(f"{system.query_api}/api/contacts", timeout=10))
    recovery = system.recovery()
    time.sleep(FAULT_SECONDS)
    workload.stop_writing()
    settled = wait_until(lambda: checker.settled(window), timeout=60, interval=0.2, message="the events to settle")
    head = checker.head()  # settled: no event is numbered after this
    record = workload.stop_watching(head, timeout=30 * TIMEOUT_FACTOR)
    report: Report = checker.report(fault.name, window, record, head, healed)
    report.recovery_seconds, report.last_ready, report.first_write = recovery
    report.first_read = first_read
    results.append(report.as_row())
    assert settled
    assert report.acknowledged > 0, report
    assert not report.violations(RECOVERY_LIMIT_SECONDS), report
