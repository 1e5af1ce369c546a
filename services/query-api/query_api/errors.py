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
