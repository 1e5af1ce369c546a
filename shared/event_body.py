"""The body of an event on `contacts.events` and on `/ws`: written here only, by the relay and by the notifier.

The relay publishes it; the notifier sends the same bytes when it reads a missed event from the outbox
instead of receiving it from the broker, so a client cannot tell the two apart.
"""

import json
from collections.abc import Mapping
from typing import Any


def event_body(seq: int, payload: Mapping[str, Any]) -> bytes:
    """The outbox row's `payload` with its stream position: `{"type": …, "seq": …, …}`, compact JSON."""
    return json.dumps({"type": payload["type"], "seq": seq, **payload}, separators=(",", ":")).encode()
