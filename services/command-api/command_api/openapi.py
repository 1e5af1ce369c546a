"""The OpenAPI document of the write endpoints, its schemas generated from the pydantic models."""

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from command_api.accounts import NewUser, Session, SignIn, User, UserList, UserPatch
from command_api.imports import MEDIA_TYPES, ImportJob
from shared import consistency
from shared.http import TOKEN_SCHEMA
from shared.identity import OPENAPI_SECURITY, OPENAPI_SECURITY_SCHEMES
from shared.limits import TOO_MANY_REQUESTS
from shared.models import READ_ONLY_FIELDS, Contact, ContactData
from shared.problems import PROBLEM_SCHEMA, problem_responses, schema_ref


def _reply(status: int, schema: str, description: str = "ok", **extra: Any) -> dict[str, Any]:
    return {
        str(status): {
            "description": description,
            "content": {"application/json": {"schema": schema_ref(schema)}},
            **extra,
        }
    }


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema_ref(schema)}}}


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
        [
            (ContactData, "validation"),
            (Contact, "serialization"),
            *((model, "validation") for model in (SignIn, NewUser, UserPatch)),
            *((model, "serialization") for model in (Session, User, UserList, ImportJob)),
        ],
        ref_template="#/components/schemas/{model}",
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
    user_id = {"name": "user_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
    cookie = {
        "Set-Cookie": {
            "schema": {"type": "string"},
            "description": "the session cookie: HttpOnly, SameSite=Strict, Secure behind HTTPS",
        }
    }
    document: dict[str, Any] = {
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
                        **problem_responses(400, 401, 403, 409, 413, 415, 422),
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
                        **problem_responses(400, 401, 403, 404, 409, 412, 413, 415, 422),
                        **TOO_MANY_REQUESTS,
                    },
                },
                "patch": {
                    "summary": "Merge-patch some fields of a contact",
                    "parameters": [contact_id, if_match],
                    "requestBody": patch_body,
                    "responses": {
                        **_contact_reply(200, "updated"),
                        **problem_responses(400, 401, 403, 404, 409, 412, 413, 415, 422),
                        **TOO_MANY_REQUESTS,
                    },
                },
                "delete": {
                    "summary": "Delete a contact",
                    "parameters": [contact_id, if_match],
                    "responses": {
                        "204": {"description": "deleted"},
                        **problem_responses(401, 403, 404, 412),
                        **TOO_MANY_REQUESTS,
                    },
                },
            },
            "/api/session": {
                "post": {
                    "summary": "Sign in: a bearer token and the session cookie; 401 for a wrong username or password",
                    "security": [],
                    "requestBody": _body("SignIn"),
                    "responses": {
                        **_reply(200, "Session", "signed in", headers=cookie),
                        **problem_responses(400, 401, 413, 415, 422),
                        **TOO_MANY_REQUESTS,
                    },
                },
                "get": {
                    "summary": "The caller, and a fresh bearer token (no longer-lived than the credential asked with)",
                    "responses": {**_reply(200, "Session"), **problem_responses(401, 403)},
                },
                "delete": {
                    "summary": "Sign out: this session's cookie and tokens stop working on every instance",
                    "responses": {
                        "204": {"description": "signed out", "headers": cookie},
                        **problem_responses(401, 403),
                    },
                },
            },
            "/api/users": {
                "get": {
                    "summary": "Every user (admins only)",
                    "responses": {**_reply(200, "UserList"), **problem_responses(401, 403)},
                },
                "post": {
                    "summary": "Add a user (admins only)",
                    "requestBody": _body("NewUser"),
                    "responses": {
                        **_reply(201, "User", "created", headers={"Location": {"schema": {"type": "string"}}}),
                        **problem_responses(400, 401, 403, 409, 413, 415, 422),
                        **TOO_MANY_REQUESTS,
                    },
                },
            },
            "/api/users/{user_id}": {
                "patch": {
                    "summary": "Change a user's name, role, password or disabled (admins only); "
                    "a new role or password, or disabling, signs them out everywhere; "
                    "the last enabled admin stays one (409)",
                    "parameters": [user_id],
                    "requestBody": _body("UserPatch"),
                    "responses": {
                        **_reply(200, "User"),
                        **problem_responses(400, 401, 403, 404, 409, 413, 415, 422),
                        **TOO_MANY_REQUESTS,
                    },
                },
            },
            "/api/imports": {
                "post": {
                    "summary": "Import a CSV (header row) or vCard 3.0/4.0 file, UTF-8, up to 10 MB and 50,000 "
                    "contacts: a job that applies it in the background (editors and admins)",
                    "requestBody": {
                        "required": True,
                        "content": {media_type: {"schema": {"type": "string"}} for media_type in sorted(MEDIA_TYPES)},
                    },
                    "responses": {
                        **_reply(202, "ImportJob", "accepted", headers={"Location": {"schema": {"type": "string"}}}),
                        **problem_responses(400, 401, 403, 413, 415, 422),
                        **TOO_MANY_REQUESTS,
                    },
                },
            },
            "/api/imports/{import_id}": {
                "get": {
                    "summary": "An import job of the caller's (any, for admins): its progress and rejected rows",
                    "parameters": [
                        {
                            "name": "import_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "format": "uuid"},
                        }
                    ],
                    "responses": {**_reply(200, "ImportJob"), **problem_responses(401, 403, 404)},
                },
            },
        },
        "components": {
            "schemas": {**schemas["$defs"], "ContactPatch": contact_patch, "Problem": PROBLEM_SCHEMA},
            "securitySchemes": OPENAPI_SECURITY_SCHEMES,
        },
        "security": OPENAPI_SECURITY,
    }
    # Every write's reply names where its commit stands, for reading it back from a replica (SPEC §10).
    for operations in document["paths"].values():
        for method, operation in operations.items():
            for status, reply in operation["responses"].items():
                if method != "get" and status.startswith("2"):
                    reply["headers"] = {
                        **reply.get("headers", {}),
                        consistency.HEADER: consistency.OPENAPI_REPLY_HEADER,
                    }
    return document
