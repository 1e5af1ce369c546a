"""RFC 9457 problem details: the one error shape of every HTTP reply (and AMQP reply) of ours."""

from typing import Any


class Problem(Exception):
    """A refusal a client can act on; subclasses name the status, title and type slug."""

    status = 400
    title = "Bad request"
    slug = "bad-request"

    def __init__(self, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors

    def problem(self) -> dict[str, Any]:
        problem: dict[str, Any] = {
            "type": f"/problems/{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors is not None:
            problem["errors"] = self.errors
        return problem


#: The JSON schema of a problem, for the services' OpenAPI documents.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def schema_ref(name: str) -> dict[str, str]:
    """An OpenAPI reference to one of the document's component schemas."""
    return {"$ref": f"#/components/schemas/{name}"}


#: What every operation may be answered besides its own problems: gunicorn's own refusals, made before the
#: app sees a request (shared.gunicorn_base.ProblemWorker), and the database not answering.
COMMON_PROBLEMS = {
    400: "the request line, a header or a chunk is malformed (gunicorn)",
    414: "the request line is longer than 4094 bytes (gunicorn)",
    417: "an Expect header other than 100-continue (gunicorn)",
    431: "more than 100 header fields, or one longer than 8190 bytes (gunicorn)",
    501: "a Transfer-Encoding other than chunked (gunicorn)",
    503: "the database is not answering, or more writes are under way than can be done in time; retry later",
}


def problem_responses(*statuses: int) -> dict[str, Any]:
    """OpenAPI responses of an operation's own problems, and of those every operation may get."""
    content = {"application/problem+json": {"schema": schema_ref("Problem")}}
    described = {status: "problem" for status in statuses}
    for status, description in COMMON_PROBLEMS.items():
        described[status] = f"{described[status]}, or {description}" if status in described else description
    return {str(status): {"description": described[status], "content": content} for status in sorted(described)}
