"""Limits for the processes tests start: far above what any suite or benchmark sends, so that only the tests
of the limits themselves (which pass their own) are ever refused."""

#: Environment every process of a Stack gets unless a test names its own value.
LIMITS_FOR_TESTS = {
    "SIGN_IN_ATTEMPTS_PER_USERNAME": "1000000",
    "SIGN_IN_ATTEMPTS_PER_ADDRESS": "1000000",
    "WRITES_PER_USER": "1000000000",
}
