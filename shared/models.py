"""The contact as clients write and read it, and the event every change becomes."""

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

CONTACT_FIELDS = ("first_name", "last_name", "email", "phone")
READ_ONLY_FIELDS = frozenset({"id", "version", "created_at", "updated_at"})

#: The whitespace trimmed from both ends of every field: Unicode's White_Space, as pydantic trims it.
_SPACE_CHARACTERS = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
)
_SPACE = "".join(f"\\u{ord(character):04x}" for character in _SPACE_CHARACTERS)  # for a regex class
_PHONE_SEPARATORS = r" ().\-"
#: What each field may be before trimming, as the OpenAPI documents state it; the validators below decide
#: the same, and say why a value is refused. A NUL is one PostgreSQL cannot store in text, though JSON
#: carries it. So is a lone UTF-16 surrogate, which pydantic refuses itself, and which the patterns need
#: not name: no JSON Schema string holds one (RFC 7493, I-JSON).
NAME_PATTERN = f"^[{_SPACE}]*[^{_SPACE}\\x00][^\\x00]*$"
PHONE_PATTERN = f"^[{_SPACE}]*\\+?[{_PHONE_SEPARATORS}]*(?:[0-9][{_PHONE_SEPARATORS}]*){{7,15}}[{_SPACE}]*$"

#: Addresses at special-use domains (RFC 6761), which email-validator refuses whatever their syntax.
SPECIAL_USE_EMAIL_PATTERN = (
    "[@.](?:" + "|".join("".join(f"[{c}{c.upper()}]" for c in name) for name in SPECIAL_USE_DOMAIN_NAMES) + ")$"
)

_PHONE_CHARACTERS = re.compile(f"\\+?[0-9{_PHONE_SEPARATORS}]+")


def _trimmed(value: str) -> str:
    """The value without whitespace at either end; refused if nothing is left or it holds a NUL."""
    if "\x00" in value:
        raise ValueError("a NUL character (\\u0000) cannot be stored")
    value = value.strip(_SPACE_CHARACTERS)
    if not value:
        raise ValueError("must not be empty or only whitespace")
    return value


def _email(value: str, info: ValidationInfo) -> str:
    """The normalised address. The contact's stored address, which a PATCH or PUT often leaves as it
    was, passes as it is: it was validated when written, and email-validator is the dearest step of
    validating a contact (~130 µs, a tenth of a PATCH's CPU)."""
    if info.context is not None and value == info.context.get("stored_email"):
        return value
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(str(error)) from None


def _phone(value: str) -> str:
    if not _PHONE_CHARACTERS.fullmatch(value):
        raise ValueError("a phone number has digits, an optional leading +, spaces, dashes, dots and parentheses")
    digits = sum(ch.isdigit() for ch in value)
    if not 7 <= digits <= 15:
        raise ValueError(f"a phone number has 7 to 15 digits, not {digits}")
    return value


# Lengths count the value as sent, before it is trimmed, as the OpenAPI documents' maxLength does.
Name = Annotated[
    str, Field(max_length=100, json_schema_extra={"minLength": 1, "pattern": NAME_PATTERN}), AfterValidator(_trimmed)
]
Email = Annotated[
    str,
    Field(max_length=254, json_schema_extra={"format": "email", "not": {"pattern": SPECIAL_USE_EMAIL_PATTERN}}),
    AfterValidator(_trimmed),
    AfterValidator(_email),
]
Phone = Annotated[
    str,
    Field(max_length=100, json_schema_extra={"minLength": 7, "pattern": PHONE_PATTERN}),
    AfterValidator(_trimmed),
    AfterValidator(_phone),
]


class ContactData(BaseModel):
    """The four fields a writer supplies; every one is mandatory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first_name: Name
    last_name: Name
    email: Email
    phone: Phone

    @classmethod
    def from_body(cls, body: Any, stored_email: str | None = None) -> "ContactData":
        """Validate a request body, ignoring the read-only fields a client may echo back.

        `stored_email` is the contact's current address, if it has one: kept as it is, it is not revalidated.
        """
        if isinstance(body, dict):
            body = {key: value for key, value in body.items() if key not in READ_ONLY_FIELDS}
        return cls.model_validate(body, context={"stored_email": stored_email})


class Contact(BaseModel):
    """A contact as every endpoint and event shows it."""

    id: int
    first_name: str
    last_name: str
    email: str
    phone: str
    version: int
    created_at: datetime
    updated_at: datetime

    def data(self) -> dict[str, str]:
        return {field: getattr(self, field) for field in CONTACT_FIELDS}


EventType = Literal["contact.created", "contact.updated", "contact.deleted"]


class Actor(BaseModel):
    """Who made a change: a signed-in user (`id`, `name`), or a RabbitMQ login (`id` null, `name` the login)."""

    id: int | None
    name: str


class ContactEvent(BaseModel):
    """The body published on `contacts.events` and pushed to browsers (SPEC §4)."""

    type: EventType
    seq: int
    event_id: UUID
    contact_id: int
    version: int
    contact: Contact | None
    changed_fields: list[str]
    source: str
    #: null when the change has no known author: a bus command without `user_id`, or an event from before actors
    actor: Actor | None = None
    at: datetime
