"""docs/asyncapi.yaml stays true: its names are the code's, its refs resolve, its examples fit and parse."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from command_api.consumer import read_message
from referencing import Registry
from referencing.jsonschema import DRAFT7

from shared import broker
from shared.commands import COMMAND_MODELS
from tests.support.asyncapi import check_message, document, validator


def _examples() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, message in document()["components"]["messages"].items():
        for example in message.get("examples", []):
            yield name, example


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_the_document_names_every_exchange_and_queue_the_code_declares() -> None:
    addresses = {channel["address"] for channel in document()["channels"].values()}
    declared = {
        broker.EVENTS_EXCHANGE,
        broker.HISTORY_QUEUE,
        broker.COMMANDS_EXCHANGE,
        broker.COMMANDS_QUEUE,
        broker.DEAD_LETTER_EXCHANGE,
        broker.DEAD_LETTER_QUEUE,
        broker.PRESENCE_EXCHANGE,
    }
    assert declared <= addresses


def test_every_reference_in_the_document_resolves() -> None:
    resolver = Registry().with_resource("urn:doc", DRAFT7.create_resource(document())).resolver("urn:doc")
    for ref in _refs(document()):
        assert resolver.lookup(ref).contents is not None, ref


@pytest.mark.parametrize(
    ("name", "example"),
    list(_examples()),
    ids=lambda value: str(value.get("name", value)) if isinstance(value, dict) else value,
)
def test_every_example_fits_its_message_schema(name: str, example: dict[str, Any]) -> None:
    check_message(name, example["payload"], example.get("headers"))


def test_every_command_example_is_accepted_by_the_consumer() -> None:
    for example in document()["components"]["messages"]["Command"]["examples"]:
        read_message(json.dumps(example["payload"]).encode(), example.get("headers"))


@pytest.mark.parametrize("command", sorted(COMMAND_MODELS))
def test_each_command_schema_has_exactly_the_fields_of_its_model(command: str) -> None:
    schema = document()["components"]["schemas"][f"{command.title()}Command"]
    assert set(schema["properties"]) == set(COMMAND_MODELS[command].model_fields)
    required = {name for name, field in COMMAND_MODELS[command].model_fields.items() if field.is_required()}
    assert set(schema["required"]) == required


@pytest.mark.parametrize(
    "payload",
    [
        {"command": "update", "contact_id": 42},
        {"command": "upsert", "contact_id": 42, "data": {}},
        {"command": "delete", "contact_id": 42, "data": {}},
    ],
)
def test_the_command_schema_rejects_what_the_consumer_refuses(payload: dict[str, Any]) -> None:
    assert not validator("/components/messages/Command/payload").is_valid(payload)
