"""The images the stack runs, as built: unprivileged, without build tools or secrets, each with its own command.

That each one starts and answers its probe is the stack's health checks (test_stack.py). Their sizes land in
test-artifacts/image-sizes.json once built (conftest.py; the README's table).
"""

import json
import shlex

import pytest

from tests.support.compose import procfile
from tests.support.containers import OUR_IMAGES, ComposeStack, run

#: What builds software, or installs it: none of it belongs in an image that only runs.
BUILD_TOOLS = ("gcc", "cc", "c++", "make", "pip", "pip3", "npm", "npx", "node", "git")


def in_image(image: str, script: str) -> str:
    return run(["docker", "run", "--rm", "--entrypoint", "sh", image, "-c", script]).stdout


@pytest.mark.parametrize("image", OUR_IMAGES)
def test_the_image_runs_as_an_unprivileged_user(built: ComposeStack, image: str) -> None:
    (document,) = json.loads(run(["docker", "image", "inspect", image]).stdout)
    assert document["Config"]["User"] not in ("", "root", "0")
    assert in_image(image, "id -u").strip() != "0"


@pytest.mark.parametrize("image", OUR_IMAGES)
def test_the_image_holds_no_build_tool_and_no_secret(built: ComposeStack, image: str) -> None:
    found = in_image(image, " ; ".join(f"command -v {tool}" for tool in BUILD_TOOLS) + " ; true")
    assert found.split() == []
    (document,) = json.loads(run(["docker", "image", "inspect", image]).stdout)
    names = [variable.split("=", 1)[0] for variable in document["Config"]["Env"]]
    assert not [name for name in names if any(word in name for word in ("PASS", "SECRET", "KEY", "TOKEN"))], names
    assert ".env" not in in_image(image, "ls -a /app"), "no .env in the build context"


@pytest.mark.parametrize("service", ["command-api", "query-api", "history-worker", "notifier"])
def test_a_python_image_runs_its_services_procfile_line_by_default(built: ComposeStack, service: str) -> None:
    image = f"contacts-live/{service}"
    (document,) = json.loads(run(["docker", "image", "inspect", image]).stdout)
    assert f"SERVICE={service}" in document["Config"]["Env"]
    script = document["Config"]["Cmd"][-1].replace("exec ", "echo ", 1)  # what it would run, printed
    assert shlex.split(in_image(image, script)) == shlex.split(procfile()[service])
