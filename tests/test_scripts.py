"""The README's scripts: valid bash, and a clear refusal of arguments they do not take (before any install)."""
from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO

SCRIPTS = ["scripts/setup.sh", "scripts/test.sh", "scripts/demo.sh", "scripts/lib.sh",
           "scripts/fresh-machine-check.sh", ".ci/run"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_it_parses_every_script(script: str) -> None:
    result = subprocess.run(["bash", "-n", script], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_it_refuses_an_unknown_setup_argument_before_installing_anything() -> None:
    result = subprocess.run(["bash", "scripts/setup.sh", "--tests"], cwd=REPO, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1
    assert "unknown argument --tests (use --test or nothing)" in result.stderr


def test_it_refuses_an_unknown_fresh_machine_check_argument() -> None:
    result = subprocess.run(["bash", "scripts/fresh-machine-check.sh", "--distro", "arch"], cwd=REPO,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "unknown --distro arch" in result.stderr
