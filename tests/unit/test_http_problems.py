"""shared.http's problem replies, on a bare Flask app with a stand-in for the identity check."""

from flask import Flask

from shared.http import RETRY_AFTER_SECONDS, serve_common
from shared.identity import Caller, IdentityUnavailable


class NotLoadedYet:
    """An identity whose revocations have not been read yet, as while PostgreSQL is down at start."""

    app_origins: frozenset[str] = frozenset()

    def caller(self, token: str) -> Caller:
        raise IdentityUnavailable("the sessions signed out are not known yet; retry shortly")


def test_a_503_of_ours_says_when_to_retry() -> None:
    app = Flask(__name__)
    serve_common(app, lambda: {}, lambda: ({}, True), NotLoadedYet())  # type: ignore[arg-type]
    app.add_url_rule("/api/contacts", "contacts", lambda: "never reached")
    reply = app.test_client().get("/api/contacts", headers={"Authorization": "Bearer some-token"})
    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert reply.json is not None and reply.json["status"] == 503
