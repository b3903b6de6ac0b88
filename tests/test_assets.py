"""The shipped assets: every file listed with its checksum, and ASSETS_DIR choosing where defaults come from."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from tests.conftest import ASSETS, REPO

MODEL_SETTINGS = ("FACE_DETECTOR_MODEL", "FACE_SSD_PROTOTXT", "EXPRESSION_MODEL", "WORD_NORMS")


def _settings(**env: str) -> dict[str, str]:
    """The model path settings as a fresh process computes them from this environment."""
    full = {k: v for k, v in os.environ.items() if k not in {"ASSETS_DIR", *MODEL_SETTINGS}}
    full.update(env, DJANGO_SETTINGS_MODULE="evalplatform.settings")
    code = ("import json, django; django.setup(); from django.conf import settings as s; "
            f"print(json.dumps({{n: str(getattr(s, n)) for n in {MODEL_SETTINGS!r}}}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=full, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_it_ships_every_asset_with_a_matching_checksum() -> None:
    listed = {}
    for line in (ASSETS / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name.removeprefix("./")] = digest
    on_disk = {str(p.relative_to(ASSETS)) for p in ASSETS.rglob("*") if p.is_file()} - {"SHA256SUMS", "README.md"}
    assert set(listed) == on_disk
    for name, digest in listed.items():
        assert hashlib.sha256((ASSETS / name).read_bytes()).hexdigest() == digest, name
    # Small enough to keep in git: a few MB.
    assert sum((ASSETS / name).stat().st_size for name in listed) < 6_000_000


def test_it_takes_the_default_models_from_the_repository_assets() -> None:
    found = _settings()
    for name in MODEL_SETTINGS:
        assert found[name].startswith(str(ASSETS) + os.sep), (name, found[name])


def test_it_looks_only_in_assets_dir_when_it_is_set(tmp_path) -> None:
    (tmp_path / "warriner-vad-norms").mkdir()
    norms = tmp_path / "warriner-vad-norms" / "Ratings_Warriner_et_al.csv"
    norms.write_bytes((ASSETS / "warriner-vad-norms" / "Ratings_Warriner_et_al.csv").read_bytes())
    found = _settings(ASSETS_DIR=str(tmp_path))
    assert found["WORD_NORMS"] == str(norms)
    # Missing there: empty, so the code that needs the file fails naming the setting (no silent fallback).
    assert found["EXPRESSION_MODEL"] == "" and found["FACE_DETECTOR_MODEL"] == ""


def test_an_explicit_setting_wins_over_the_assets(tmp_path) -> None:
    assert _settings(WORD_NORMS=str(tmp_path / "mine.csv"))["WORD_NORMS"] == str(tmp_path / "mine.csv")
