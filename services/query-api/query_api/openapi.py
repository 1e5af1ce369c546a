"""The OpenAPI document of the read endpoints, its schemas generated from the pydantic models."""

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from query_api.pages import ContactPage, HistoryPage
from query_api.params import (
    CURSOR_PATTERN,
    DEFAULT_LIMIT,
    EXPORT_FORMATS,
    MAX_LIMIT,
    MAX_SEARCH_LENGTH,
    SEARCH_PATTERN,
    SORTS,
)
from shared.consistency import OPENAPI_PARAMETER
from shared.identity import OPENAPI_SECURITY, OPENAPI_SECURITY_SCHEMES
from shared.models import Contact
from shared.problems import PROBLEM_SCHEMA, problem_responses, schema_ref


def _reply(schema: str, **extra: Any) -> dict[str, Any]:
    return {"description": "ok", "content": {"application/json": {"schema": schema_ref(schema)}}, **extra}


@cache
def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(model, "serialization") for model in (Contact, ContactPage, HistoryPage)],
        ref_template="#/components/schemas/{model}",
    )
    limit = {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    }
    cursor = {
        "name": "cursor",
        "in": "query",
        "schema": {"type": "string", "pattern": CURSOR_PATTERN},
        "description": "next_cursor, as given; one of this shape we did not issue for this list is a 404",
    }
    search = {
        "name": "search",
        "in": "query",
        "schema": {"type": "string", "maxLength": MAX_SEARCH_LENGTH, "pattern": SEARCH_PATTERN},
        "description": "matched anywhere in first name, last name, email or phone",
    }
    sort = {"name": "sort", "in": "query", "schema": {"type": "string", "enum": list(SORTS), "default": "last_name"}}
    contact_id = {"name": "contact_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Contacts, live: query-api", "version": "1.0.0"},
        "paths": {
            "/api/contacts": {
                "get": {
                    "summary": "List contacts: case-insensitive substring search, sort, keyset pages",
                    "parameters": [search, sort, limit, cursor, OPENAPI_PARAMETER],
                    "responses": {"200": _reply("ContactPage"), **problem_responses(400, 401, 403, 404, 422, 503)},
                }
            },
            "/api/contacts/export": {
                "get": {
                    "summary": "The whole list, or a search of it, as a CSV (a header row: first_name, last_name, "
                    "email, phone) or vCard 4.0 file, streamed; it imports back as it is",
                    "parameters": [
                        {
                            "name": "format",
                            "in": "query",
                            "schema": {"type": "string", "enum": list(EXPORT_FORMATS), "default": "csv"},
                        },
                        search,
                        sort,
                    ],
                    "responses": {
                        "200": {
                            "description": "the file",
                            "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
                            "content": {
                                "text/csv; charset=utf-8": {"schema": {"type": "string"}},
                                "text/vcard; charset=utf-8": {"schema": {"type": "string"}},
                            },
                        },
                        **problem_responses(401, 403, 422),
                    },
                }
            },
            "/api/contacts/{contact_id}": {
                "get": {
                    "summary": "One contact; 404 if absent or deleted",
                    "parameters": [
                        contact_id,
                        {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
                        OPENAPI_PARAMETER,
                    ],
                    "responses": {
                        "200": _reply("Contact", headers={"ETag": {"schema": {"type": "string"}}}),
                        "304": {"description": "not modified"},
                        **problem_responses(400, 401, 403, 404, 503),
                    },
                }
            },
            "/api/contacts/{contact_id}/history": {
                "get": {
                    "summary": "Every version of a contact, newest first; also after it was deleted",
                    "parameters": [contact_id, limit, cursor, OPENAPI_PARAMETER],
                    "responses": {"200": _reply("HistoryPage"), **problem_responses(400, 401, 403, 404, 422, 503)},
                }
            },
        },
        "components": {
            "schemas": {**schemas["$defs"], "Problem": PROBLEM_SCHEMA},
            "securitySchemes": OPENAPI_SECURITY_SCHEMES,
        },
        "security": OPENAPI_SECURITY,
    }
