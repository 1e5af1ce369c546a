"""Test data unique to each test, so tests never collide."""

import uuid
from typing import Any


def new_contact(**fields: Any) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:12]
    return {
        "first_name": "Ada",
        "last_name": f"Lovelace-{tag}",
        "email": f"ada.{tag}@example.com",
        "phone": "+44 20 7946 0958",
        **fields,
    }
