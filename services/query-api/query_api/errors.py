"""Why a read was refused, as RFC 9457 problems."""

from shared.problems import Problem


class InvalidQuery(Problem):
    status = 422
    title = "Invalid query"
    slug = "validation"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(f"{len(errors)} query parameter(s) are invalid", errors)


class ContactNotFound(Problem):
    status = 404
    title = "Not found"
    slug = "not-found"

    def __init__(self, contact_id: int) -> None:
        super().__init__(f"contact {contact_id} does not exist")


class UnknownCursor(Problem):
    """A cursor of the documented shape that is not one we issued for this list (or this sort, or this history).

    A 404, not a 422: the request is well-formed, but the page it asks for is not one we know.
    """

    status = 404
    title = "Unknown cursor"
    slug = "unknown-cursor"

    def __init__(self, message: str) -> None:
        super().__init__(f"cursor: {message}", [{"field": "cursor", "message": message}])
