"""A headless Chromium for the browser tests where the system has none and Playwright's download host
cannot be reached (scripts/setup.sh calls this last): the Linux x86_64 build published on the npm registry
as @sparticuz/chromium, pinned and checked against its sha512, unpacked into DEST.

    python scripts/chromium_fetch.py DEST     # prints DEST/chromium

Needs the `brotli` module (setup.sh installs it into the venv first). Exits 1 with one line on failure.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import platform
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "153.0.0"  # Chromium 153.0.8010.0
URL = f"https://registry.npmjs.org/@sparticuz/chromium/-/chromium-{VERSION}.tgz"
SHA512 = "jiGWqSvPMdu4+P9TilYqAR7yEGPEHINx+lCvE/NqNO/EHYzF/x1hUiI5T6ioVIt7dEy7n88byyT0vk+dnsgQwA=="
PARTS = ("swiftshader", "fonts")  # GL in software and fonts beside the binary; the system's own libraries stay


def _members(archive: tarfile.TarFile, names: set[str]) -> dict[str, bytes]:
    found = {}
    for member in archive.getmembers():
        if member.isfile() and member.name in names:
            found[member.name] = archive.extractfile(member).read()
    return found


def _plain(archive: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Its files and folders, refusing absolute paths, "..", links and devices (Python 3.11.2, Debian 12's,
    has no extraction filters)."""
    members = archive.getmembers()
    for member in members:
        if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in Path(member.name).parts:
            raise RuntimeError(f"refusing archive member {member.name!r}")
    return members


def fetch(dest: Path) -> Path:
    import brotli

    if platform.machine() not in ("x86_64", "AMD64"):
        raise RuntimeError(f"the npm registry's Chromium is built for x86_64, not {platform.machine()}")
    with urllib.request.urlopen(URL, timeout=120) as response:
        data = response.read()
    digest = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != SHA512:
        raise RuntimeError(f"{URL} has sha512 {digest}, expected {SHA512}")
    wanted = {f"package/bin/{name}" for name in ("chromium.br", *(f"{p}.tar.br" for p in PARTS))}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        files = _members(archive, wanted)
    if set(files) != wanted:
        raise RuntimeError(f"{URL} lacks {', '.join(sorted(wanted - set(files)))}")
    dest.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        with tarfile.open(fileobj=io.BytesIO(brotli.decompress(files[f"package/bin/{part}.tar.br"]))) as inner:
            inner.extractall(dest, members=_plain(inner))
    binary = dest / "chromium"
    binary.write_bytes(brotli.decompress(files["package/bin/chromium.br"]))
    binary.chmod(0o755)
    return binary


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/chromium_fetch.py DEST")
    try:
        print(fetch(Path(sys.argv[1]).resolve()))
    except Exception as exc:  # noqa: BLE001 - one line for the set-up's log
        sys.exit(f"chromium_fetch: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    os.umask(0o022)
    main()
