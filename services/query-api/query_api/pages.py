"""What the read endpoints answer: pages of contacts and of history entries.

These models document the replies (the OpenAPI document's schemas are made from them); the views build
the bodies straight from PostgreSQL's rows, which already have these types, and a test checks real
replies against the schemas.
"""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

from shared.models import Actor, Contact


class ContactPage(BaseModel):
    items: list[Contact]
    next_cursor: str | None


class HistoryEntry(BaseModel):
    """One version of a contact, as the event that made it described it."""

    version: int
    op: Literal["created", "updated", "deleted"]
    changed_fields: list[str]
    source: str
    actor: Actor | None
    at: datetime
    event_id: UUID
    contact: Contact | None


class HistoryPage(BaseModel):
    items: list[HistoryEntry]
    next_cursor: str | None
