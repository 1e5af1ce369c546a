"""What the notifier and its clients say besides the events themselves (SPEC §4): hello, resume, resync, error."""

import json
from collections.abc import Mapping
from typing import Annotated, Literal
from urllib.parse import parse_qs

from pydantic import BaseModel, Field, StringConstraints, ValidationError


class ClientMessageError(ValueError):
    """A client message or resume request the notifier cannot act on; `str()` says why, for the client."""


class Resume(BaseModel):
    """Send every event after `after` of the stream `epoch`; sent as a message or as `?epoch=…&after=…`."""

    type: Literal["resume"] = "resume"
    epoch: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    after: Annotated[int, Field(ge=0)]


def parse_client_message(message: str | bytes) -> Resume:
    if isinstance(message, bytes):
        raise ClientMessageError("messages are JSON text frames")
    try:
        body = json.loads(message)
    except json.JSONDecodeError as error:
        raise ClientMessageError(f"not JSON: {error}") from None
    if not isinstance(body, dict) or body.get("type") != "resume":
        raise ClientMessageError('the only message a client sends is {"type": "resume", "epoch": …, "after": …}')
    return _validated(body)


def resume_from_query(query: str) -> Resume | None:
    """The resume asked for on the URL, or None when the URL asks for none."""
    fields = {key: values[-1] for key, values in parse_qs(query).items() if key in ("epoch", "after")}
    return _validated(fields) if fields else None


def _validated(fields: Mapping[str, object]) -> Resume:
    try:
        return Resume.model_validate(fields)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in error.errors())
        raise ClientMessageError(f"invalid resume: {problems}") from None


def hello(epoch: str, seq: int) -> str:
    return json.dumps({"type": "hello", "epoch": epoch, "seq": seq})


def resync(epoch: str, seq: int) -> str:
    """Events were missed and cannot be supplied: reload, then carry on from `seq` of `epoch`."""
    return json.dumps({"type": "resync", "epoch": epoch, "seq": seq})


def error(detail: str) -> str:
    return json.dumps({"type": "error", "detail": detail})
