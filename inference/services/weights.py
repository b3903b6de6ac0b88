"""Fetch the authors' FaceChannel weights: download, verify against the published git blob ids, extract.

The `facechannel` package downloads `trainedNetworks.tar.xz` from the authors' repository at run time;
this does the same once, on the operator's command, and keeps only the Dimensional (arousal/valence)
model. Nothing is kept unless both the archive and the extracted file have the published git blob ids
(the only versions ever committed upstream), and the file appears at its destination in one rename, so
a failed or interrupted fetch never leaves a half-written model where FACECHANNEL_WEIGHTS points.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import httpx

from inference.va.facechannel import OFFICIAL_GIT_BLOB

FACECHANNEL_ARCHIVE_URL = (
    "https://github.com/pablovin/FaceChannel/raw/master/src/FaceChannel/FaceChannelV1/trainedNetworks.tar.xz")
# git blob id of src/FaceChannel/FaceChannelV1/trainedNetworks.tar.xz (one version over the whole history).
FACECHANNEL_ARCHIVE_GIT_BLOB = "226f5e5e7355a193e2682e7d26a83f72020bb78b"
FACECHANNEL_DIMENSIONAL_NAME = "DimensionalFaceChannel.h5"
FACECHANNEL_DIMENSIONAL_GIT_BLOB = OFFICIAL_GIT_BLOB

Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)


class WeightsFetchError(Exception):
    """A fetch that kept nothing; the message says why in the user's terms."""


def git_blob_id(path: Path) -> str:
    """What `git hash-object FILE` prints, streamed (the archive is tens of MB)."""
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target: BinaryIO, *, timeout: float, progress: Progress | None) -> int:
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise WeightsFetchError(f"the server answered HTTP {response.status_code} for {url}; nothing was kept")
            total = int(response.headers["content-length"]) if "content-length" in response.headers else None
            received = 0
            for block in response.iter_raw(1 << 16):
                target.write(block)
                received += len(block)
                if progress:
                    progress(received, total)
    except httpx.ConnectError as exc:
        raise WeightsFetchError(f"cannot connect to {httpx.URL(url).host} ({exc}); nothing was kept") from exc
    except httpx.TimeoutException as exc:
        raise WeightsFetchError(f"the download from {url} timed out after {timeout:g} s; nothing was kept") from exc
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise WeightsFetchError(f"the download from {url} was cut off ({exc}); nothing was kept") from exc
    except httpx.HTTPError as exc:
        raise WeightsFetchError(f"the download from {url} failed: {exc}; nothing was kept") from exc
    if total is not None and received != total:
        raise WeightsFetchError(f"the download from {url} was truncated: {received} of {total} bytes; "
                                "nothing was kept")
    return received


def facechannel_weights_fetch(
    *,
    dest: Path,
    url: str = FACECHANNEL_ARCHIVE_URL,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> Path:
    """Download the archive from `url`, verify it, and place DimensionalFaceChannel.h5 at `dest`.

    Returns `dest`. A file already at `dest` with the published blob id is kept as it is (no download).
    Raises WeightsFetchError (nothing written at `dest`, no temporary file left) on any failure.
    """
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / FACECHANNEL_DIMENSIONAL_NAME
    if dest.is_file() and git_blob_id(dest) == FACECHANNEL_DIMENSIONAL_GIT_BLOB:
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        # The scratch folder sits beside the destination so the final step is a same-filesystem rename.
        scratch = Path(tempfile.mkdtemp(prefix=".fetch-", dir=dest.parent))
    except OSError as exc:
        raise WeightsFetchError(f"cannot write to {dest.parent}: {exc.strerror or exc}") from exc
    try:
        archive = scratch / "trainedNetworks.tar.xz"
        with archive.open("wb") as handle:
            _download(url, handle, timeout=timeout, progress=progress)
        found = git_blob_id(archive)
        if found != FACECHANNEL_ARCHIVE_GIT_BLOB:
            raise WeightsFetchError(
                f"the archive from {url} has git blob {found}, not the published {FACECHANNEL_ARCHIVE_GIT_BLOB}: "
                "it is not the authors' file (or it is damaged); nothing was kept")
        extracted = scratch / FACECHANNEL_DIMENSIONAL_NAME
        try:
            with tarfile.open(archive, mode="r:*") as tar:
                # Read the member's bytes ourselves rather than tar.extract(): no path from the archive is
                # ever used on disk.
                members = [m for m in tar.getmembers()
                           if m.isfile() and m.name.rsplit("/", 1)[-1] == FACECHANNEL_DIMENSIONAL_NAME]
                if not members:
                    raise WeightsFetchError(f"the archive from {url} holds no {FACECHANNEL_DIMENSIONAL_NAME}; "
                                            "nothing was kept")
                source = tar.extractfile(members[0])
                assert source is not None  # a regular file always has content
                with source, extracted.open("wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise WeightsFetchError(f"the archive from {url} cannot be read ({exc}); nothing was kept") from exc
        found = git_blob_id(extracted)
        if found != FACECHANNEL_DIMENSIONAL_GIT_BLOB:
            raise WeightsFetchError(
                f"{FACECHANNEL_DIMENSIONAL_NAME} in the archive has git blob {found}, not the published "
                f"{FACECHANNEL_DIMENSIONAL_GIT_BLOB}; nothing was kept")
        os.replace(extracted, dest)
        return dest
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def env_file_set(*, path: Path, name: str, value: str) -> None:
    """Set `name=value` in a dotenv file (replacing an earlier line for `name`), written in one rename."""
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if not line.split("=", 1)[0].strip() == name]
    kept.append(f"{name}={value}")
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text("\n".join(kept) + "\n")
    os.replace(scratch, path)
