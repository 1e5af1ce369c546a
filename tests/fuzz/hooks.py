"""schemathesis hooks for test_openapi_fuzz.py: the failures a check of schemathesis reports wrongly for our API.

Every check stays on. A failure is dropped only when the reply is one our API must give by a standard the
check does not know, named here by its status and problem type; schemathesis counts what it drops.
"""

import json
from typing import Any

import schemathesis
from schemathesis.core.failures import AcceptedNegativeData, Failure
from schemathesis.openapi.checks import RejectedPositiveData

# (status, problem type) of the replies below, as shared/problems.py and the services write them.
VERSION_MISMATCH = (412, "/problems/version-mismatch")
IDEMPOTENCY_KEY_REUSED = (422, "/problems/idempotency-key-reused")
URI_TOO_LONG = (414, "about:blank")
HEADERS_TOO_LARGE = (431, "about:blank")
UNREADABLE_FILE = (422, "/problems/unreadable-file")


@schemathesis.hook
def filter_failure(context: Any, failure: Failure, case: Any, response: Any) -> bool:
    """Keep every failure except these four, each right for our API and unknown to the check:

    - 412 to a request whose `If-Match` names another version, its data valid or not: RFC 9110 §13.2.1
      evaluates preconditions before the request content, and If-Match matching no current ETag is 412
      (§13.1.1). Like 404 and 409, which the checks expect, it depends on the resource's state.
    - 422 to a create whose `Idempotency-Key` was used before with another body: the IETF draft
      (draft-ietf-httpapi-idempotency-key-header, "Error Scenarios") and SPEC §3 say so; the fuzzer draws
      keys from a small space and reuses them with new bodies.
    - 414 and 431, gunicorn's refusals of a request line or headers over its limits, to invalid data:
      they are rejections (4xx problems, documented), missing from negative_data_rejection's list.
    - 422 `unreadable-file` to an import whose body is a string but no file we read (a CSV whose header
      names no field, a vCard file without a card): what a CSV or vCard file holds is no JSON Schema
      string's to say, so the document gives the body as a string, and this 422 among its replies.
    """
    reply = (response.status_code, _problem_type(response))
    if isinstance(failure, RejectedPositiveData | AcceptedNegativeData) and reply == VERSION_MISMATCH:
        return "If-Match" not in (case.headers or {})
    if isinstance(failure, RejectedPositiveData) and reply == IDEMPOTENCY_KEY_REUSED:
        return "Idempotency-Key" not in (case.headers or {})
    if isinstance(failure, RejectedPositiveData) and reply == UNREADABLE_FILE:
        return False
    return not (isinstance(failure, AcceptedNegativeData) and reply in (URI_TOO_LONG, HEADERS_TOO_LARGE))


def _problem_type(response: Any) -> str | None:
    try:
        problem = json.loads(response.content)
    except ValueError:
        return None
    return problem.get("type") if isinstance(problem, dict) else None
