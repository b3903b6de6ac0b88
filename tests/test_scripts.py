"""The README's scripts: valid bash, and a clear refusal of arguments they do not take (before any install)."""
from __future__ import annotations

import subprocess
import sys

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


def _chromium_fetch():  # noqa: ANN202 - the script as a module (scripts/ is not a package)
    import importlib.util

    spec = importlib.util.spec_from_file_location("chromium_fetch", REPO / "scripts" / "chromium_fetch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("member", ["../outside", "/etc/evil", "link"])
def test_the_chromium_fetch_refuses_an_archive_member_that_could_land_outside_its_folder(member: str) -> None:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.addfile(tarfile.TarInfo("fonts/ok.ttf"), io.BytesIO(b""))
        info = tarfile.TarInfo(member)
        if member == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(info, io.BytesIO(b""))
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as archive, pytest.raises(RuntimeError, match="refusing archive member"):
        _chromium_fetch()._plain(archive)


def test_the_chromium_fetch_takes_plain_files_and_folders() -> None:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folder = tarfile.TarInfo("fonts")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        archive.addfile(tarfile.TarInfo("fonts/ok.ttf"), io.BytesIO(b""))
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as archive:
        assert [m.name for m in _chromium_fetch()._plain(archive)] == ["fonts", "fonts/ok.ttf"]


def test_the_chromium_fetch_says_how_to_call_it() -> None:
    result = subprocess.run([sys.executable, "scripts/chromium_fetch.py"], cwd=REPO, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1 and "usage: python scripts/chromium_fetch.py DEST" in result.stderr
