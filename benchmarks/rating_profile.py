"""Where a rating request's time goes: the page and the submit, in-process, split into database round trips,
SQL compilation, template rendering and the rest (views, middleware, ORM object building), plus the
functions with the most own time.

Runs against the benchmark database that `benchmarks/rating_load.py` leaves behind (`affect_bench`), with the
Django test client (no network, no gunicorn: the server's own CPU per request).

    python benchmarks/rating_load.py --rate 50 --duration 5      # creates and seeds affect_bench
    REDIS_URL=redis://127.0.0.1:6379/N python benchmarks/rating_profile.py [--items 100]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100, help="Items to rate (page + submit each).")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/affect_bench", help="Benchmark database.")
    args = parser.parse_args()
    os.environ.update({"DJANGO_SETTINGS_MODULE": "evalplatform.settings", "DATABASE_URL": args.pg, "DEBUG": "0",
                       "SECRET_KEY": "benchmark-only-" + "x" * 40, "ALLOWED_HOSTS": "testserver",
                       "DB_CONN_MAX_AGE": "60", "CELERY_TASK_ALWAYS_EAGER": "1", "LOG_LEVEL": "WARNING"})
    import django

    django.setup()
    from django.db import connection
    from django.db.models.sql import compiler
    from django.template.backends import django as template_backend
    from django.test import Client

    timers: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    depth = {"compile": 0}

    def db_wrapper(execute, sql, params, many, context):  # noqa: ANN001, ANN202
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timers["db"] += time.perf_counter() - start
            counts["queries"] += 1

    original_as_sql = compiler.SQLCompiler.as_sql

    def as_sql(self, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        depth["compile"] += 1
        start = time.perf_counter()
        try:
            return original_as_sql(self, *a, **kw)
        finally:
            depth["compile"] -= 1
            if depth["compile"] == 0:  # subqueries compile inside their parent: count the outer call only
                timers["compile"] += time.perf_counter() - start

    original_render = template_backend.Template.render

    def render(self, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        start = time.perf_counter()
        try:
            return original_render(self, *a, **kw)
        finally:
            timers["template"] += time.perf_counter() - start

    compiler.SQLCompiler.as_sql = as_sql
    template_backend.Template.render = render

    client = Client()
    worker = f"profile-{os.getpid()}-{int(time.time())}"
    joined = client.get("/s/bench/join", {"PROLIFIC_PID": worker, "STUDY_ID": "p", "SESSION_ID": worker}, follow=True)
    token = CSRF_RE.search(joined.content.decode())
    if token is None:
        raise SystemExit("could not join the benchmark study; run benchmarks/rating_load.py first")
    client.post("/s/bench/consent", {"agree": "on", "csrfmiddlewaretoken": token.group(1)})
    url = client.get("/s/bench/")["Location"]
    client.get(url)  # warm: the first page also estimates the progress total (cached a minute)

    def rate(url: str, per_kind: dict[str, dict[str, float]], profiler: cProfile.Profile | None) -> str:
        done = 0
        with connection.execute_wrapper(db_wrapper):
            while done < args.items and "/a/" in url:
                for kind in ("page", "submit"):
                    timers.clear()
                    counts.clear()
                    start, cpu_start = time.perf_counter(), time.thread_time()
                    if profiler is not None:
                        profiler.enable()
                    if kind == "page":
                        page = client.get(url)
                    else:
                        html = page.content.decode()
                        response = client.post(url, {"value": "5" if "choose 5" in html else "4",
                                                     "csrfmiddlewaretoken": CSRF_RE.search(html).group(1)})
                    if profiler is not None:
                        profiler.disable()
                    row = per_kind[kind]
                    row["n"] += 1
                    row["total"] += time.perf_counter() - start
                    row["cpu"] += time.thread_time() - cpu_start
                    row["queries"] += counts["queries"]
                    for name in ("db", "compile", "template"):
                        row[name] += timers[name]
                url = response["Location"]
                done += 1
        return url

    # Timed without the profiler first (cProfile slows Python about 2x), then again under it.
    per_kind: dict[str, dict[str, float]] = {"page": defaultdict(float), "submit": defaultdict(float)}
    url = rate(url, per_kind, None)
    profiler = cProfile.Profile()
    rate(url, {"page": defaultdict(float), "submit": defaultdict(float)}, profiler)
    done = int(per_kind["submit"]["n"])

    print(f"{done} items rated in-process (Django test client, {connection.vendor}); per request, ms:")
    print(f"{'':8}{'total':>8}{'CPU':>7}{'queries':>9}{'db round trips':>16}{'SQL compile':>13}{'template':>10}"
          f"{'rest':>8}")
    for kind, row in per_kind.items():
        n = max(row["n"], 1)
        rest = row["total"] - row["db"] - row["compile"] - row["template"]
        print(f"{kind:8}{row['total'] / n * 1000:8.2f}{row['cpu'] / n * 1000:7.2f}{row['queries'] / n:9.1f}"
              f"{row['db'] / n * 1000:16.2f}{row['compile'] / n * 1000:13.2f}{row['template'] / n * 1000:10.2f}"
              f"{rest / n * 1000:8.2f}")
    print("CPU: this process's own CPU time (time.thread_time), whatever else the machine runs; the database's "
          "CPU is part of the round trips.")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
    stats.print_stats(15)
    print("functions with the most own time (page + submit together):")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:4000])


if __name__ == "__main__":
    main()
