"""deploy/with-docker.sh with stand-ins of our own for docker and dockerd: it starts an engine only when none
answers, and stops only the one it started."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import ROOT

#: `docker info` answers while the marker exists; every other docker command succeeds and does nothing.
FAKE_DOCKER = """#!/bin/sh
[ "$1" = info ] && { [ -e "$STATE/engine" ]; exit $?; }
exit 0
"""
#: An engine: answers (the marker) until SIGTERM, then says it was stopped.
FAKE_DOCKERD = """#!/bin/sh
touch "$STATE/engine"
trap 'rm -f "$STATE/engine"; echo stopped >"$STATE/dockerd"; exit 0' TERM
while :; do sleep 0.1; done
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="with-docker.sh starts an engine only as root")


def run_with_fakes(tmp_path: Path, engine_running: bool) -> tuple[str, Path]:
    tools = tmp_path / "bin"
    tools.mkdir()
    for name, script in {"docker": FAKE_DOCKER, "dockerd": FAKE_DOCKERD}.items():
        (tools / name).write_text(script)
        (tools / name).chmod(0o755)
    for name in ("docker-compose", "debootstrap"):
        (tools / name).write_text("#!/bin/sh\nexit 0\n")
        (tools / name).chmod(0o755)
    if engine_running:
        (tmp_path / "engine").touch()
    result = subprocess.run(
        [str(ROOT / "deploy/with-docker.sh"), "sh", "-c", 'docker info && echo "the command ran with an engine"'],
        env={**os.environ, "PATH": f"{tools}:/usr/bin:/bin", "STATE": str(tmp_path), "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout + result.stderr, tmp_path


def test_an_engine_is_started_for_the_command_and_stopped_after_it(tmp_path: Path) -> None:
    output, state = run_with_fakes(tmp_path, engine_running=False)
    assert "starting dockerd" in output and "the command ran with an engine" in output
    assert (state / "dockerd").read_text() == "stopped\n", "the engine it started is stopped"
    assert not (state / "engine").exists()


def test_an_engine_that_already_runs_is_used_and_left_running(tmp_path: Path) -> None:
    output, state = run_with_fakes(tmp_path, engine_running=True)
    assert "starting dockerd" not in output and "the command ran with an engine" in output
    assert (state / "engine").exists() and not (state / "dockerd").exists()
