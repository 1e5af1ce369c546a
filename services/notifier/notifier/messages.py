"""What the notifier and its clients say besides the events themselves (SPEC §4, §11): hello, resume, resync,
presence, error."""

import json
from collections.abc import Mapping
from typing import Annotated, Literal, TypeVar
from urllib.parse import parse_qs

from pydantic import BaseModel, Field, StrictInt, StringConstraints, ValidationError

#: The largest contact id a presence message may name (PostgreSQL's bigint).
MAX_CONTACT_ID = 2**63 - 1

Message = TypeVar("Message", bound=BaseModel)


class ClientMessageError(ValueError):
    """A client message or resume request the notifier cannot act on; `str()` says why, for the client."""


class Resume(BaseModel):
    """Send every event after `after` of the stream `epoch`; sent as a message or as `?epoch=…&after=…`."""

    type: Literal["resume"] = "resume"
    epoch: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    after: Annotated[int, Field(ge=0)]


class PresenceSet(BaseModel):
    """The sender is looking at (`viewing`) or editing `contact_id`, or no longer there (`null`)."""

    type: Literal["presence"] = "presence"
    contact_id: Annotated[StrictInt, Field(ge=1, le=MAX_CONTACT_ID)]
    state: Literal["viewing", "editing"] | None


def parse_client_message(message: str | bytes) -> Resume | PresenceSet:
    if isinstance(message, bytes):
        raise ClientMessageError("messages are JSON text frames")
    try:
        body = json.loads(message)
    except json.JSONDecodeError as error:
        raise ClientMessageError(f"not JSON: {error}") from None
    kind = body.get("type") if isinstance(body, dict) else None
    if kind == "presence":
        return _validated(PresenceSet, body)
    if kind != "resume":
        raise ClientMessageError(
            'the only messages a client sends are {"type": "resume", "epoch": …, "after": …} and'
            ' {"type": "presence", "contact_id": …, "state": "viewing" | "editing" | null}'
        )
    return _validated(Resume, body)


def resume_from_query(query: str) -> Resume | None:
    """The resume asked for on the URL, or None when the URL asks for none."""
    fields = {key: values[-1] for key, values in parse_qs(query).items() if key in ("epoch", "after")}
    return _validated(Resume, fields) if fields else None


def _validated(model: type[Message], fields: Mapping[str, object]) -> Message:
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in error.errors())
        raise ClientMessageError(f"invalid {model.model_fields['type'].default}: {problems}") from None


def hello(epoch: str, seq: int) -> str:
    return json.dumps({"type": "hello", "epoch": epoch, "seq": seq})


def resync(epoch: str, seq: int) -> str:
    """Events were missed and cannot be supplied: reload, then carry on from `seq` of `epoch`."""
    return json.dumps({"type": "resync", "epoch": epoch, "seq": seq})


def error(detail: str) -> str:
    return json.dumps({"type": "error", "detail": detail})


def presence(contact_id: int, users: list[dict[str, object]]) -> str:
    """Who is on `contact_id` now: each person once, as `{"id", "name", "state"}`."""
    return json.dumps({"type": "presence", "contact_id": contact_id, "users": users})
