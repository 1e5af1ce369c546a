"""Validation of a contact as SPEC §3 states it."""

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.models import CONTACT_FIELDS, ContactData

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


@pytest.mark.parametrize("field", CONTACT_FIELDS)
@pytest.mark.parametrize("unstorable", ["\x00", "\ud800"])
def test_text_postgresql_cannot_store_is_refused_naming_the_field(field: str, unstorable: str) -> None:
    """NUL and lone surrogates: JSON carries them, PostgreSQL's text cannot; refused before any SQL."""
    value = {"email": f"ada{unstorable}@example.com", "phone": f"+44 20{unstorable} 7946 0958"}.get(
        field, f"A{unstorable}da"
    )
    with pytest.raises(ValidationError, match=field) as refused:
        ContactData.from_body({**VALID, field: value})
    assert [error["loc"] for error in refused.value.errors()] == [(field,)]


_ANY_CHARACTER = st.characters()  # NUL and controls included; no surrogate, which no JSON Schema string holds
_FIELD_SCHEMAS = ContactData.model_json_schema()["properties"]


@pytest.mark.parametrize("field", ["first_name", "phone"])
@given(data=st.data())
def test_the_documented_schema_of_a_field_accepts_what_validation_accepts(field: str, data: st.DataObject) -> None:
    """The OpenAPI documents say exactly what a field may be (a fuzzer trusting them finds no surprise)."""
    schema = _FIELD_SCHEMAS[field]
    documented = st.from_regex(schema["pattern"]).filter(lambda value: len(value) <= schema["maxLength"])
    value = data.draw(
        st.one_of(documented, st.text(_ANY_CHARACTER, max_size=110), st.text("+1 ()-.\t\x00", max_size=20))
    )
    try:
        ContactData.from_body({**VALID, field: value})
        accepted = True
    except ValidationError:
        accepted = False
    assert jsonschema.Draft202012Validator(schema).is_valid(value) == accepted, repr(value)
