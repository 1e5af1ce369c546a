"""The fault matrix's checker counts what it must: a checker that cannot see a gap would pass every fault."""

from tests.support.checker import Checker, Report
from tests.support.workload import Watcher


def _watched(*frames: tuple[str, int]) -> Report:
    report = Report("test")
    Checker._count_watcher(report, Watcher("w", list(frames), connections=2))
    return report


def test_a_client_that_got_every_seq_in_order_has_no_gap() -> None:
    report = _watched(("hello", 10), ("event", 11), ("event", 12), ("event", 13))
    assert (report.ws_gaps, report.ws_resyncs, report.ws_reconnects) == (0, 0, 1)


def test_a_missed_a_repeated_and_an_out_of_order_seq_are_each_a_gap() -> None:
    assert _watched(("hello", 10), ("event", 11), ("event", 13)).ws_gaps == 1
    assert _watched(("hello", 10), ("event", 11), ("event", 11), ("event", 12)).ws_gaps == 1
    assert _watched(("hello", 10), ("event", 12), ("event", 11), ("event", 13)).ws_gaps == 2


def test_a_resync_starts_the_count_again_and_is_counted_apart() -> None:
    report = _watched(("hello", 10), ("event", 11), ("resync", 40), ("event", 41))
    assert (report.ws_gaps, report.ws_resyncs) == (0, 1)


def test_any_count_above_zero_a_slow_recovery_or_a_failed_first_write_breaks_the_targets() -> None:
    def report(**counts: object) -> Report:
        return Report("test", **{"recovery_seconds": 1.0, "first_write": "201", "first_read": "200", **counts})  # type: ignore[arg-type]

    assert report(acknowledged=5).violations(10) == []
    assert report(lost=1).violations(10) == ["lost = 1"]
    assert report(recovery_seconds=11.0).violations(10) == ["recovery_seconds = 11.0 (limit 10)"]
    assert report(recovery_seconds=None).violations(10) == ["recovery_seconds = None (limit 10)"]
    assert report(first_write="503").violations(10) == ["first_write = 503"]
    assert report(first_read="ConnectionError").violations(10) == ["first_read = ConnectionError"]
