"""command-api with no token check, for S2a's side "checking off" only: never run it anywhere else.

Every request's token is taken as the bench's editor without verifying its signature or looking its
session up among the revoked ones; everything else (reading the credentials, the role, the limits, the
handlers) is as shipped. gunicorn loads it in place of `command_api.app:create_app()`.
"""

import os
import time

from command_api.app import create_app

from shared import identity

_CALLER = identity.Caller(
    id=int(os.environ["BENCH_CALLER_ID"]),
    username="bench",
    name="Bench",
    role="editor",
    session_id="bench",
    expires_at=time.time() + 86_400,
)


def _unchecked(_identity: identity.Identity, _token: str) -> identity.Caller:
    return _CALLER


identity.Identity.caller = _unchecked  # type: ignore[method-assign,assignment]

__all__ = ["create_app"]
