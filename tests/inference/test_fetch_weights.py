"""`fetch_weights facechannel` against a local HTTP server (127.0.0.1 only) serving an archive built here.

The real archive cannot be downloaded on this network; the test archive has the real layout
(trainedNetworks/…/DimensionalFaceChannel.h5) and the expected git blob ids are those of the files built
here, so every check the command makes runs for real.
"""
from __future__ import annotations

import io
import socket
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from inference.services import weights

H5_BYTES = b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 64  # stands in for the model: only its blob id matters


def _blob(data: bytes) -> str:
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


GOOD = _archive({"trainedNetworks/DimensionalFaceChannel.h5": H5_BYTES,
                 "trainedNetworks/CategoricalFaceChannel.h5": b"categorical"})


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, bytes, int | None]] = {}  # path -> (status, body, Content-Length sent)
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.hits.append(self.path)
        status, body, length = self.routes.get(self.path, (404, b"not found", None))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if length is not None and length != len(body):
            self.close_connection = True  # a cut-off transfer: fewer bytes than announced, then the close

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch) -> Iterator[str]:
    _Handler.routes, _Handler.hits = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(weights, "FACECHANNEL_ARCHIVE_GIT_BLOB", _blob(GOOD))
    monkeypatch.setattr(weights, "FACECHANNEL_DIMENSIONAL_GIT_BLOB", _blob(H5_BYTES))
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _fetch(url: str, to: Path, *extra: str) -> str:
    out = io.StringIO()
    call_command("fetch_weights", "facechannel", "--url", url, "--to", str(to), "--timeout", "10", *extra,
                 stdout=out, stderr=io.StringIO())
    return out.getvalue()


def _nothing_written(folder: Path) -> bool:
    return not folder.exists() or list(folder.iterdir()) == []


def test_it_downloads_verifies_and_places_the_dimensional_model(server, tmp_path) -> None:
    _Handler.routes["/trainedNetworks.tar.xz"] = (200, GOOD, None)
    dest = tmp_path / "models" / "fc.h5"
    out = _fetch(f"{server}/trainedNetworks.tar.xz", dest)
    assert dest.read_bytes() == H5_BYTES
    assert out.strip().splitlines()[-1] == f"FACECHANNEL_WEIGHTS={dest.resolve()}"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["fc.h5"]  # no scratch file left, no other member


def test_it_writes_the_setting_to_an_env_file_keeping_the_other_lines(server, tmp_path) -> None:
    _Handler.routes["/a.tar.xz"] = (200, GOOD, None)
    env = tmp_path / ".env"
    env.write_text("DEBUG=1\nFACECHANNEL_WEIGHTS=/old/path.h5\nREDIS_URL=redis://x/0\n")
    dest = tmp_path / "w"
    dest.mkdir()
    out = _fetch(f"{server}/a.tar.xz", dest, "--write-env", str(env))
    placed = dest / "DimensionalFaceChannel.h5"
    assert placed.read_bytes() == H5_BYTES
    assert env.read_text() == f"DEBUG=1\nREDIS_URL=redis://x/0\nFACECHANNEL_WEIGHTS={placed.resolve()}\n"
    assert f"wrote FACECHANNEL_WEIGHTS={placed.resolve()} to {env}" in out


def test_it_keeps_a_verified_file_without_downloading_again(server, tmp_path) -> None:
    dest = tmp_path / "fc.h5"
    dest.write_bytes(H5_BYTES)
    out = _fetch(f"{server}/never-asked.tar.xz", dest)
    assert _Handler.hits == [] and f"FACECHANNEL_WEIGHTS={dest.resolve()}" in out


def test_it_refuses_an_archive_with_the_wrong_checksum(server, tmp_path) -> None:
    _Handler.routes["/x.tar.xz"] = (200, _archive({"trainedNetworks/DimensionalFaceChannel.h5": b"other"}), None)
    with pytest.raises(CommandError, match=r"git blob [0-9a-f]{40}, not the published .*nothing was kept"):
        _fetch(f"{server}/x.tar.xz", tmp_path / "models" / "fc.h5")
    assert _nothing_written(tmp_path / "models")


@pytest.mark.parametrize(("members", "message"), [
    ({"trainedNetworks/DimensionalFaceChannel.h5": b"tampered"}, "DimensionalFaceChannel.h5 in the archive has git blob"),
    ({"trainedNetworks/CategoricalFaceChannel.h5": b"categorical"}, "holds no DimensionalFaceChannel.h5"),
], ids=["model-with-the-wrong-checksum", "no-dimensional-model"])
def test_it_refuses_an_archive_with_the_right_checksum_but_not_the_right_model(server, tmp_path, monkeypatch,
                                                                               members, message) -> None:
    archive = _archive(members)
    monkeypatch.setattr(weights, "FACECHANNEL_ARCHIVE_GIT_BLOB", _blob(archive))
    _Handler.routes["/x.tar.xz"] = (200, archive, None)
    with pytest.raises(CommandError, match=message):
        _fetch(f"{server}/x.tar.xz", tmp_path / "models" / "fc.h5")
    assert _nothing_written(tmp_path / "models")


def test_it_reports_a_truncated_download_and_keeps_nothing(server, tmp_path) -> None:
    _Handler.routes["/x.tar.xz"] = (200, GOOD[: len(GOOD) // 2], len(GOOD))
    with pytest.raises(CommandError, match="(cut off|truncated).*nothing was kept"):
        _fetch(f"{server}/x.tar.xz", tmp_path / "models" / "fc.h5")
    assert _nothing_written(tmp_path / "models")


def test_it_reports_a_server_error_and_keeps_nothing(server, tmp_path) -> None:
    _Handler.routes["/x.tar.xz"] = (503, b"maintenance", None)
    with pytest.raises(CommandError, match="HTTP 503"):
        _fetch(f"{server}/x.tar.xz", tmp_path / "models" / "fc.h5")
    assert _nothing_written(tmp_path / "models")


def test_it_reports_an_unreachable_host_and_keeps_nothing(tmp_path) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(CommandError, match="cannot connect to 127.0.0.1"):
        _fetch(f"http://127.0.0.1:{port}/x.tar.xz", tmp_path / "models" / "fc.h5")
    assert _nothing_written(tmp_path / "models")


@pytest.mark.parametrize("timeout", ["nan", "-1", "0"])
def test_it_refuses_a_timeout_that_is_not_a_positive_number(tmp_path, timeout: str) -> None:
    # httpx raised ValueError mid-request (a traceback) for these.
    with pytest.raises(CommandError, match="--timeout must be a positive number of seconds"):
        call_command("fetch_weights", "facechannel", "--url", "http://127.0.0.1:9/x.tar.xz",
                     "--to", str(tmp_path / "models" / "fc.h5"), "--timeout", timeout)
    assert _nothing_written(tmp_path / "models")


def test_it_keeps_an_earlier_file_when_a_new_fetch_fails(server, tmp_path) -> None:
    dest = tmp_path / "fc.h5"
    dest.write_bytes(b"an older, unverified copy")
    _Handler.routes["/x.tar.xz"] = (500, b"boom", None)
    with pytest.raises(CommandError, match="HTTP 500"):
        _fetch(f"{server}/x.tar.xz", dest)
    assert dest.read_bytes() == b"an older, unverified copy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fc.h5"]


def test_it_names_an_unwritable_destination(server, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CommandError, match="cannot write to"):
        _fetch(f"{server}/x.tar.xz", blocker / "sub" / "fc.h5")
