"""The Docker image's pages under production settings: the Dockerfile's own collectstatic step, then
gunicorn on `evalplatform.settings_production` serving real pages (a 500 on every page is what a
collectstatic under the wrong settings gave)."""
from __future__ import annotations

import http.client
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

STUDY_SETUP = """
from annotations.models import Item, Study
from inference.models import Dataset, Generation, LLMConfig, PromptTemplate, Sample, VAEstimate
dataset = Dataset.objects.create(name="prod-check", format="manifest", label_set=["happiness"])
sample = Sample.objects.create(dataset=dataset, external_id="a", image="samples/a.png", image_sha256="a" * 64,
                               width=8, height=8)
va = VAEstimate.objects.create(sample=sample, source="dataset", valence=0.1, arousal=0.2)
config = LLMConfig.objects.create(name="prod-lexicon", backend="lexicon")
prompt = PromptTemplate.objects.create(task="describe", name="prod-describe", text="{valence} {arousal}")
generation = Generation.objects.create(va_estimate=va, config=config, prompt=prompt, task="describe", text="calm")
study = Study.objects.create(name="Production check", slug="prod-check", dataset=dataset, status="open")
Item.objects.create(study=study, generation=generation, text="calm")
"""


def _dockerfile_collectstatic() -> str:
    """The Dockerfile's collectstatic RUN instruction (continuation lines joined)."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    [line] = [ln for ln in text.splitlines() if ln.startswith("RUN") and "collectstatic" in ln]
    return line.removeprefix("RUN").strip()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def production_env(tmp_path_factory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("prod")
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    # The Dockerfile says `python`. A wrapper, not a symlink: a symlink to a venv's interpreter from another
    # folder starts the base interpreter without the venv's packages (seen on a fresh machine).
    wrapper = bin_dir / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DEBUG", "REDIS_URL"}}
    env.update({
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "STATIC_ROOT": str(tmp / "static"), "DATA_DIR": str(tmp / "data"),
        "DATABASE_URL": f"sqlite:///{tmp / 'prod.sqlite3'}",
    })
    return env


@pytest.fixture(scope="module")
def server(production_env) -> Iterator[int]:
    command = _dockerfile_collectstatic()
    assert "DJANGO_SETTINGS_MODULE=evalplatform.settings_production" in command
    build = subprocess.run(["sh", "-c", command], cwd=REPO, env=production_env, capture_output=True, text=True,
                           timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    assert (Path(production_env["STATIC_ROOT"]) / "staticfiles.json").is_file()

    run_env = dict(production_env, DJANGO_SETTINGS_MODULE="evalplatform.settings_production",
                   SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="127.0.0.1")
    for args in (["migrate", "--noinput"], ["shell", "-c", STUDY_SETUP]):
        step = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=run_env, capture_output=True,
                              text=True, timeout=300)
        assert step.returncode == 0, step.stderr[-3000:]
    port = _free_port()
    # The image's command, without DJANGO_SETTINGS_MODULE it would pick production too (see test_settings).
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "evalplatform.wsgi:application", "--bind",
                             f"127.0.0.1:{port}", "--workers", "1"], cwd=REPO, env=run_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {proc.stdout.read()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _get(port: int, path: str, cookie: str = "") -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    # Behind the TLS proxy of a deployment (SECURE_PROXY_SSL_HEADER): otherwise every page redirects to https.
    headers = {"Host": "127.0.0.1", "X-Forwarded-Proto": "https"}
    if cookie:
        headers["Cookie"] = cookie
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read().decode("utf-8", errors="replace")
    result = response.status, {k.lower(): v for k, v in response.getheaders()}, body
    conn.close()
    return result


@pytest.mark.parametrize(("path", "statuses"), [
    ("/", {200, 302}),
    ("/accounts/login/", {200}),
    ("/admin/login/", {200}),
    ("/s/prod-check/join", {200}),
])
def test_it_serves_real_pages_under_production_settings(server: int, path: str, statuses: set[int]) -> None:
    status, _, body = _get(server, path)
    assert status in statuses, body[-2000:]
    if status == 200:
        # Hashed names from the manifest, and the file itself is served.
        hashed = re.findall(r'/static/[^"\']+\.[0-9a-f]{12}\.(?:css|js)', body)
        assert hashed, "no manifest-hashed static URL on the page"
        assert _get(server, hashed[0])[0] == 200


def test_it_takes_a_crowd_participant_from_the_join_link_to_the_consent_page(server: int) -> None:
    status, headers, _ = _get(server, "/s/prod-check/join?PROLIFIC_PID=p1&STUDY_ID=s1&SESSION_ID=x1")
    assert status == 302 and "/s/prod-check/consent" in headers["location"]
    cookie = headers["set-cookie"].split(";")[0]
    status, _, body = _get(server, "/s/prod-check/consent", cookie=cookie)
    assert status == 200 and "Production check" in body
