"""Run as a script (by test_sqlite_submits.py): on a fresh SQLite file, RACE_THREADS (20) threads post the
same rating of one assignment at once, as a double-clicking participant's browser would; prints the status codes as JSON.

A script, not a test: the test suite runs on PostgreSQL, and the SQLite settings are what is under test.
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

import django

os.environ["DJANGO_SETTINGS_MODULE"] = "evalplatform.settings"
sys.path.insert(0, os.getcwd())
django.setup()

from django.core.management import call_command  # noqa: E402
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.test import Client  # noqa: E402

THREADS = int(os.environ.get("RACE_THREADS", "20"))


def main() -> None:
    call_command("migrate", verbosity=0)
    from annotations.models import Assignment, Rating, Study
    from inference.models import Dataset, Generation, LLMConfig, PromptTemplate, Sample, VAEstimate

    dataset = Dataset.objects.create(name="race", format="manifest")
    config = LLMConfig.objects.create(name="race-config", backend="lexicon")
    prompt = PromptTemplate.objects.create(task="describe", name="race", text="V={valence}")
    for i in range(3):
        sample = Sample.objects.create(dataset=dataset, external_id=f"s{i}", image=f"samples/{i}.png",
                                       image_sha256=f"{i:064d}", width=8, height=8)
        va = VAEstimate.objects.create(sample=sample, source="expression", model_sha256="m" * 64, valence=0.1,
                                       arousal=0.1)
        Generation.objects.create(va_estimate=va, config=config, prompt=prompt, task="describe", text=f"text {i}")
    from annotations.services.studies import study_create

    study = study_create(name="Race", dataset=dataset, config_names=[], prompt_names=[], k=2, open_now=True)
    client = Client()
    client.get(f"/s/{study.slug}/join", {"PROLIFIC_PID": "double-clicker"})
    client.post(f"/s/{study.slug}/consent", {"agree": "on"})
    location = client.get(f"/s/{study.slug}/")["Location"]
    page = client.get(location).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    cookie = "; ".join(f"{key}={morsel.value}" for key, morsel in client.cookies.items())
    # A real threaded server (as `runserver` in the demo): requests run in parallel threads, each with
    # its own SQLite connection, which is where "database is locked" came from.
    ThreadedWSGIServer.request_queue_size = 256  # the default backlog (5) resets connections of a burst
    server = ThreadedWSGIServer(("127.0.0.1", 0), WSGIRequestHandler, allow_reuse_address=True)
    server.set_app(get_wsgi_application())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}{location}"
    body = urllib.parse.urlencode({"value": "4", "csrfmiddlewaretoken": token}).encode()
    start = threading.Barrier(THREADS)
    codes: list[int | str] = []
    lock = threading.Lock()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)

    def submit() -> None:
        request = urllib.request.Request(url, data=body, headers={
            "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded", "Referer": url})
        start.wait()
        try:
            code = opener.open(request, timeout=60).status
        except urllib.error.HTTPError as exc:
            code = exc.code
        except OSError as exc:  # the connection itself failed: reported, never silently dropped
            code = f"{type(exc).__name__}"
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=submit) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    server.shutdown()
    print(json.dumps({"codes": sorted(codes, key=str), "ratings": Rating.objects.filter(item__study=study).count(),
                      "submitted": Assignment.objects.filter(status="submitted").count(),
                      "study": Study.objects.get().slug}))


if __name__ == "__main__":
    main()
