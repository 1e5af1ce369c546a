"""schemathesis against both OpenAPI documents: every check, every phase (the stateful one included).

Each API gets `FUZZ_SECONDS` (60 by default; `make faults` gives more) and must end with no failure.
schemathesis runs as its CLI, so that what it found — each failure with a curl to reproduce it — is
the test's failure message. It is signed in as an editor (its `ignored_auth` check sends each request
without the token, and with a bad one, too); it never signs that session out, which would leave
nothing but 401s to explore.
"""

import os
import subprocess

import pytest

from tests.conftest import Launch
from tests.support.processes import ROOT, VENV_BIN, ServiceProcess
from tests.support.read_side import start_query_api

pytestmark = pytest.mark.integration

FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "60"))
#: The failures a check reports wrongly for our API, and why (SCHEMATHESIS_HOOKS names a module to import).
HOOKS = "tests.fuzz.hooks"
#: The operations left out, by API: signing out (command-api's) would end the very session schemathesis
#: fuzzes with; tests/integration/test_identity.py signs out and checks what follows.
EXCLUDED = {"command-api": ["--exclude-name", "DELETE /api/session"], "query-api": []}


@pytest.fixture(scope="module")
def query_api(launch_for_session: Launch) -> str:
    return start_query_api(launch_for_session, name="query-api-for-fuzz")


@pytest.fixture(scope="module")
def apis(command_api: str, relay: ServiceProcess, query_api: str) -> dict[str, str]:
    """Both APIs, on this run's database, with a relay publishing what command-api writes."""
    return {"command-api": command_api, "query-api": query_api}


def schemathesis(api: str, base_url: str, token: str) -> subprocess.CompletedProcess[str]:
    """Run schemathesis against `api` at `base_url` for FUZZ_SECONDS, with `token` as its bearer token;
    its output and exit code."""
    argv = [
        str(VENV_BIN / "schemathesis"),
        "run",
        f"{base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        *EXCLUDED[api],
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-time",
        str(FUZZ_SECONDS),
        "--request-timeout",
        "10",
        "--suppress-health-check",
        "too_slow",
        "--no-color",
        "--output-sanitize",
        "false",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=FUZZ_SECONDS * 3 + 120)


@pytest.mark.parametrize("api", ["command-api", "query-api"])
def test_schemathesis_finds_no_failure(apis: dict[str, str], api: str, editor_token: str) -> None:
    """Every reply to whatever schemathesis sends, alone or in sequences, is one the document allows."""
    run = schemathesis(api, apis[api], editor_token)
    assert run.returncode == 0, f"schemathesis found failures in {api}:\n{run.stdout}\n{run.stderr}"
