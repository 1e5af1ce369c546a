"""What each command does to the store and which event it records, with an in-memory store of our own."""

from datetime import UTC, datetime
from typing import Any

import pytest
from command_api.errors import ContactNotFound, InvalidContact, VersionMismatch
from command_api.handlers import CreateContact, DeleteContact, Origin, PatchContact, ReplaceContact, apply
from command_api.store import ContactStore

from shared.models import Contact

ORIGIN = Origin("api", "trace-1")
ADA = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0958"}


class FakeStore(ContactStore):
    def __init__(self) -> None:
        self.contacts: dict[int, Contact] = {}
        self.events: list[tuple[dict[str, Any], str | None]] = []
        self.last_id = 0

    def reserve_id(self) -> tuple[int, datetime]:
        self.last_id += 1
        return self.last_id, datetime.now(UTC)

    def lock(self, contact_id: int) -> tuple[Contact, datetime] | None:
        contact = self.contacts.get(contact_id)
        return None if contact is None else (contact, datetime.now(UTC))

    def insert(self, contact: Contact, event: dict[str, Any], correlation_id: str | None) -> None:
        self.update(contact, event, correlation_id)

    def update(self, contact: Contact, event: dict[str, Any], correlation_id: str | None) -> None:
        self.contacts[contact.id] = contact
        self.events.append((event, correlation_id))

    def mark_deleted(self, contact: Contact, event: dict[str, Any], correlation_id: str | None) -> None:
        del self.contacts[contact.id]
        self.events.append((event, correlation_id))


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


def test_create_records_a_created_event_naming_every_field(store: FakeStore) -> None:
    contact = apply(store, CreateContact(ADA), ORIGIN)
    assert contact is not None
    [(event, correlation_id)] = store.events
    assert event["type"] == "contact.created" and correlation_id == "trace-1"
    assert event["contact"] == contact.model_dump(mode="json")
    assert event["changed_fields"] == ["first_name", "last_name", "email", "phone"]
    assert (event["version"], event["source"]) == (1, "api")


def test_patch_merges_and_names_only_what_changed(store: FakeStore) -> None:
    apply(store, CreateContact(ADA), ORIGIN)
    patched = apply(store, PatchContact(1, {"phone": "+1 555 0100 99", "id": 77}, expected_version=1), ORIGIN)
    assert patched is not None and patched.version == 2 and patched.first_name == "Ada"
    assert store.events[-1][0]["changed_fields"] == ["phone"]


def test_a_write_that_changes_nothing_is_not_a_version(store: FakeStore) -> None:
    apply(store, CreateContact(ADA), ORIGIN)
    assert apply(store, ReplaceContact(1, ADA), ORIGIN) == store.contacts[1]
    assert store.contacts[1].version == 1 and len(store.events) == 1


def test_a_stale_expected_version_is_refused_before_any_change(store: FakeStore) -> None:
    apply(store, CreateContact(ADA), ORIGIN)
    with pytest.raises(VersionMismatch):
        apply(store, PatchContact(1, {"first_name": "Bea"}, expected_version=2), ORIGIN)
    assert store.contacts[1].first_name == "Ada" and len(store.events) == 1


@pytest.mark.parametrize(
    "patch", [["first_name"], "Bea", {"first_name": None}, {"first_name": ""}, {"x": 1}, {"x": None}]
)
def test_a_bad_merge_patch_is_invalid(store: FakeStore, patch: Any) -> None:
    apply(store, CreateContact(ADA), ORIGIN)
    with pytest.raises(InvalidContact):
        apply(store, PatchContact(1, patch), ORIGIN)


def test_delete_records_an_event_without_a_snapshot(store: FakeStore) -> None:
    apply(store, CreateContact(ADA), ORIGIN)
    assert apply(store, DeleteContact(1, expected_version=1), ORIGIN) is None
    event, _ = store.events[-1]
    assert event["type"] == "contact.deleted"
    assert (event["contact"], event["version"], event["changed_fields"]) == (None, 2, [])


@pytest.mark.parametrize("contact_id", [0, -1, 2**64])
def test_ids_out_of_range_are_not_found(store: FakeStore, contact_id: int) -> None:
    with pytest.raises(ContactNotFound):
        apply(store, DeleteContact(contact_id), ORIGIN)


def test_invalid_contact_names_each_field() -> None:
    with pytest.raises(InvalidContact) as refused:
        apply(FakeStore(), CreateContact({"first_name": "", "email": "x"}), ORIGIN)
    problem = refused.value.problem()
    assert problem["status"] == 422
    assert {error["field"] for error in problem["errors"]} == {"first_name", "last_name", "email", "phone"}


def test_an_email_left_as_stored_is_not_revalidated_but_a_new_one_is(store: FakeStore) -> None:
    apply(store, CreateContact(ADA), ORIGIN)
    # Stored by an earlier rule that email-validator would refuse today: a PATCH of the phone keeps it.
    store.contacts[1] = store.contacts[1].model_copy(update={"email": "ada@localhost"})
    patched = apply(store, PatchContact(1, {"phone": "+1 555 0100 99"}), ORIGIN)
    assert patched is not None and patched.email == "ada@localhost"
    with pytest.raises(InvalidContact):
        apply(store, PatchContact(1, {"email": "bea@localhost"}), ORIGIN)


def test_an_unknown_field_set_to_null_is_named_like_any_unknown_field(store: FakeStore) -> None:
    """Found by schemathesis: `{"x": null}` was dropped with the nulls that remove a field, so accepted."""
    apply(store, CreateContact(ADA), ORIGIN)
    with pytest.raises(InvalidContact) as refused:
        apply(store, PatchContact(1, {"nickname": None, "id": None}), ORIGIN)
    assert [error["field"] for error in refused.value.errors or []] == ["nickname"]
