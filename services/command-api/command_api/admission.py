"""Admission control (issue 21): each worker takes at most `COMMAND_API_MAX_WRITES_IN_PROGRESS` writes at
a time; one more is refused at once, `503` with `Retry-After`, before a database round trip is spent on
it, so that an overload is answered rather than queued without bound. A create counts until it is
committed, not while its deferred reply waits (Flask tears the request down before the body is sent).
"""

from flask import Flask, Response, g, request

from shared.http import unavailable_response
from shared.limits import WRITE_METHODS


def admit_writes(app: Flask, limit: int) -> None:
    """Register after the hook that sets `g.arrived` (shared.http.serve_common), before any that costs a
    round trip."""
    in_progress = 0  # one gevent worker is one thread: its hooks never run at the same time

    @app.before_request
    def admit() -> Response | None:
        nonlocal in_progress
        if request.method not in WRITE_METHODS:
            return None
        if in_progress >= limit:
            return unavailable_response("more writes are under way than can be done in time; retry shortly")
        in_progress += 1
        g.admitted = True
        return None

    @app.teardown_request
    def release(_: BaseException | None) -> None:
        nonlocal in_progress
        if g.pop("admitted", False):
            in_progress -= 1
