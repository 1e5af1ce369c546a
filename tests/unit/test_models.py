"""Validation of a contact as SPEC §3 states it."""

import pytest
from pydantic import ValidationError

from shared.models import ContactData

VALID = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0958"}


def test_values_are_trimmed_and_read_only_fields_ignored() -> None:
    data = ContactData.from_body({**VALID, "first_name": "  Ada ", "id": 9, "version": 3, "created_at": "x"})
    assert data.first_name == "Ada"


@pytest.mark.parametrize("phone", ["+44 20 7946 0958", "(555) 010-0100", "555.010.0100", "1234567", "+123456789012345"])
def test_human_phone_numbers_are_accepted(phone: str) -> None:
    assert ContactData.from_body({**VALID, "phone": phone}).phone == phone


@pytest.mark.parametrize(
    "phone", ["123456", "+1234567890123456", "555-CALL-NOW", "++1 555 0100", "\u0665" * 10, "1\t2345678"]
)
def test_other_phone_numbers_are_refused(phone: str) -> None:
    with pytest.raises(ValidationError, match="phone"):
        ContactData.from_body({**VALID, "phone": phone})


@pytest.mark.parametrize("email", ["plain", "a@b", "@example.com", "a b@example.com", "x" * 250 + "@example.com"])
def test_invalid_emails_are_refused(email: str) -> None:
    with pytest.raises(ValidationError, match="email"):
        ContactData.from_body({**VALID, "email": email})


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_names_are_one_to_a_hundred_characters(field: str) -> None:
    assert getattr(ContactData.from_body({**VALID, field: "x" * 100}), field) == "x" * 100
    for bad in ("", "   ", "x" * 101, 7, None):
        with pytest.raises(ValidationError, match=field):
            ContactData.from_body({**VALID, field: bad})


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="nickname"):
        ContactData.from_body({**VALID, "nickname": "Ada"})
