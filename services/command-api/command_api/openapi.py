"""The OpenAPI document of the write endpoints, its schemas generated from the pydantic models."""

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from shared.http import TOKEN_SCHEMA
from shared.limits import TOO_MANY_REQUESTS
from shared.models import READ_ONLY_FIELDS, Contact, ContactData
from shared.problems import PROBLEM_SCHEMA, problem_responses, schema_ref


def _contact_reply(status: int, description: str) -> dict[str, Any]:
    return {
        str(status): {
            "description": description,
            "headers": {"ETag": {"schema": {"type": "string"}, "description": "the version, quoted"}},
            "content": {"application/json": {"schema": schema_ref("Contact")}},
        }
    }


@cache
def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(ContactData, "validation"), (Contact, "serialization")], ref_template="#/components/schemas/{model}"
    )
    # A body may echo the read-only fields of a contact it was read as: they are ignored, whatever they hold.
    read_only = {field: {"description": "read-only: ignored"} for field in sorted(READ_ONLY_FIELDS)}
    contact_data = schemas["$defs"]["ContactData"]
    contact_data["properties"].update(read_only)
    # A merge patch: any of the fields, each as a contact has it (null would remove a mandatory field).
    contact_patch = {key: value for key, value in contact_data.items() if key != "required"}
    contact_patch.update(title="ContactPatch", description="Some fields of a contact, as a JSON merge patch")
    body = {"required": True, "content": {"application/json": {"schema": schema_ref("ContactData")}}}
    patch_body = {
        "required": True,
        "content": {
            "application/merge-patch+json": {"schema": schema_ref("ContactPatch")},
            "application/json": {"schema": schema_ref("ContactPatch")},
        },
    }
    contact_id = {"name": "contact_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
    if_match = {"name": "If-Match", "in": "header", "schema": {"type": "string"}, "description": 'e.g. "3"'}
    idempotency_key = {"name": "Idempotency-Key", "in": "header", "schema": TOKEN_SCHEMA}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Contacts, live: command-api", "version": "1.0.0"},
        "paths": {
            "/api/contacts": {
                "post": {
                    "summary": "Create a contact; the reply is deferred CREATE_REPLY_DELAY_SECONDS",
                    "parameters": [idempotency_key],
                    "requestBody": body,
                    "responses": {
                        **_contact_reply(201, "created"),
                        **problem_responses(400, 409, 413, 415, 422),
                        **TOO_MANY_REQUESTS,
                    },
                }
            },
            "/api/contacts/{contact_id}": {
                "put": {
                    "summary": "Replace a contact",
                    "parameters": [contact_id, if_match],
                    "requestBody": body,
                    "responses": {
                        **_contact_reply(200, "replaced"),
                        **problem_responses(400, 404, 409, 412, 413, 415, 422),
                        **TOO_MANY_REQUESTS,
                    },
                },
                "patch": {
                    "summary": "Merge-patch some fields of a contact",
                    "parameters": [contact_id, if_match],
                    "requestBody": patch_body,
                    "responses": {
                        **_contact_reply(200, "updated"),
                        **problem_responses(400, 404, 409, 412, 413, 415, 422),
                        **TOO_MANY_REQUESTS,
                    },
                },
                "delete": {
                    "summary": "Delete a contact",
                    "parameters": [contact_id, if_match],
                    "responses": {
                        "204": {"description": "deleted"},
                        **problem_responses(404, 412),
                        **TOO_MANY_REQUESTS,
                    },
                },
            },
        },
        "components": {"schemas": {**schemas["$defs"], "ContactPatch": contact_patch, "Problem": PROBLEM_SCHEMA}},
    }
