"""What the read endpoints answer: pages of contacts and of history entries."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

from shared.models import Contact


class ContactPage(BaseModel):
    """What a list reply is; query-api writes it as a SerializedPage, and documents it with this."""

    items: list[Contact]
    next_cursor: str | None


@dataclass(frozen=True)
class SerializedPage:
    """A ContactPage whose contacts PostgreSQL has already written as JSON texts, joined without parsing."""

    items: list[str]
    next_cursor: str | None

    def json(self) -> str:
        return f'{{"items":[{",".join(self.items)}],"next_cursor":{json.dumps(self.next_cursor)}}}'


class HistoryEntry(BaseModel):
    """One version of a contact, as the event that made it described it."""

    version: int
    op: Literal["created", "updated", "deleted"]
    changed_fields: list[str]
    source: str
    at: datetime
    event_id: UUID
    contact: Contact | None


class HistoryPage(BaseModel):
    items: list[HistoryEntry]
    next_cursor: str | None
