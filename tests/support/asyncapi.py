"""The AsyncAPI document (docs/asyncapi.yaml), and checks of messages against its schemas."""

from collections.abc import Mapping
from functools import cache
from typing import Any

import yaml
from jsonschema import Draft7Validator
from referencing import Registry
from referencing.jsonschema import DRAFT7

from tests.support.processes import ROOT

DOCUMENT = ROOT / "docs" / "asyncapi.yaml"
_BASE = "urn:contacts:asyncapi"


@cache
def document() -> dict[str, Any]:
    return dict(yaml.safe_load(DOCUMENT.read_text()))


@cache
def _registry() -> Registry[Any]:
    registry: Registry[Any] = Registry().with_resource(_BASE, DRAFT7.create_resource(document()))
    return registry


def validator(pointer: str) -> Draft7Validator:
    """A validator for the schema at `pointer` in the document, e.g. `/components/schemas/Contact`."""
    return Draft7Validator(
        {"$ref": f"{_BASE}#{pointer}"}, registry=_registry(), format_checker=Draft7Validator.FORMAT_CHECKER
    )


def check_message(name: str, payload: Any, headers: Mapping[str, Any] | None = None) -> None:
    """Raise `jsonschema.ValidationError` unless the payload (and headers) fit the document's message `name`."""
    message = document()["components"]["messages"][name]
    validator(f"/components/messages/{name}/payload").validate(payload)
    if "headers" in message:
        validator(f"/components/messages/{name}/headers").validate(dict(headers or {}))
