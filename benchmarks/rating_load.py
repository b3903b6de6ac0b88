"""Load test of the rating page and the submit: gunicorn + PostgreSQL on loopback.

Goal (issue #6): p99 < 50 ms at 200 requests/s on 2 cores.

What it does, all on 127.0.0.1:
1. (re)creates the database `affect_bench`, migrates it, seeds one open study (N items, k raters);
2. starts gunicorn on the real WSGI app (DEBUG off, persistent DB connections);
3. joins U crowd annotators (Prolific links + consent; not timed);
4. paces requests at --rate per second for --duration seconds (at most --max-requests), each virtual
   annotator looping: GET /s/<slug>/ (assignment, 302) → GET the rating page → POST the rating (302);
5. prints throughput and p50/p99 per endpoint, measured from send to last byte.

Run:  python benchmarks/rating_load.py --rate 200 --duration 20
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import psycopg

REPO = Path(__file__).resolve().parent.parent
DB_NAME = "affect_bench"
SLUG = "bench"
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="Target requests per second (all endpoints).")
    parser.add_argument("--duration", type=float, default=20.0, help="Seconds of paced load.")
    parser.add_argument("--max-requests", type=int, default=20_000, help="Hard cap on timed requests.")
    parser.add_argument("--users", type=int, default=40, help="Concurrent virtual annotators (threads).")
    parser.add_argument("--items", type=int, default=1000, help="Items in the seeded study.")
    parser.add_argument("--k", type=int, default=5, help="Raters per item in the seeded study.")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes.")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (gthread).")
    parser.add_argument("--port", type=int, default=0, help="Port (default: a free one).")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL.")
    parser.add_argument("--json", help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    if args.rate <= 0 or args.duration <= 0 or args.users < 1 or args.items < 1 or args.k < 1:
        parser.error("--rate, --duration, --users, --items and --k must be positive")
    if args.duration > 600 or args.max_requests > 200_000:
        parser.error("bounded: --duration at most 600 s, --max-requests at most 200000")
    return args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(args: argparse.Namespace, data_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "evalplatform.settings", "DATABASE_URL": f"{args.pg}/{DB_NAME}",
        "DEBUG": "0", "SECRET_KEY": "benchmark-only-" + "x" * 40, "ALLOWED_HOSTS": "127.0.0.1",
        "DB_CONN_MAX_AGE": "60", "REDIS_URL": "", "CELERY_TASK_ALWAYS_EAGER": "1", "DATA_DIR": data_dir,
        "LOG_LEVEL": "WARNING",
    })
    return env


def database_create(args: argparse.Namespace) -> None:
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


SEED = r"""
import sys
import django
django.setup()
from django.core.management import call_command
from inference.models import Dataset, Generation, LLMConfig, PromptTemplate, Sample, VAEstimate
from annotations.services.studies import study_create

n, k = int(sys.argv[1]), int(sys.argv[2])
call_command("migrate", verbosity=0)
dataset = Dataset.objects.create(name="bench", format="manifest")
config = LLMConfig.objects.create(name="bench-config", backend="lexicon")
prompt = PromptTemplate.objects.create(task="describe", name="describe", text="{valence} {arousal}")
samples = Sample.objects.bulk_create([
    Sample(dataset=dataset, external_id=f"s{i}", image=f"samples/none-{i}.png", image_sha256=f"{i:064d}",
           width=64, height=64) for i in range(n)])
estimates = VAEstimate.objects.bulk_create([
    VAEstimate(sample=s, source="dataset", model_sha256="dataset", valence=0.1, arousal=0.2) for s in samples])
Generation.objects.bulk_create([
    Generation(va_estimate=e, config=config, prompt=prompt, task="describe", status="ok",
               text=f"The person looks calm, slightly pleased and relaxed ({i}).") for i, e in enumerate(estimates)])
study = study_create(name="Benchmark", slug="bench", dataset="bench", config_names=["bench-config"],
                     prompt_names=["describe"], k=k, show_image=False, open_now=True,
                     attention_items=["Attention: choose 5.|5|5"])
print(study.items.count())
"""


def seed(args: argparse.Namespace, env: dict[str, str]) -> int:
    out = subprocess.run([sys.executable, "-c", SEED, str(args.items), str(args.k)], cwd=REPO, env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"seeding failed:\n{out.stderr[-3000:]}")
    return int(out.stdout.strip().splitlines()[-1])


def gunicorn_start(args: argparse.Namespace, env: dict[str, str], port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gunicorn", "evalplatform.wsgi:application", "--bind", f"127.0.0.1:{port}",
           "--workers", str(args.workers), "--worker-class", "gthread", "--threads", str(args.threads),
           "--log-level", "warning", "--keep-alive", "30"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/pipeline/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    gunicorn_stop(proc)
    raise SystemExit("gunicorn did not answer within 30 s")


def gunicorn_stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def join(base: str, worker: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=10)
    page = client.get(f"/s/{SLUG}/join", params={"PROLIFIC_PID": worker, "STUDY_ID": "b", "SESSION_ID": worker},
                      follow_redirects=True)
    token = CSRF_RE.search(page.text)
    if page.status_code != 200 or token is None:
        raise SystemExit(f"join failed for {worker}: {page.status_code}")
    done = client.post(f"/s/{SLUG}/consent", data={"agree": "on", "csrfmiddlewaretoken": token.group(1)})
    if done.status_code != 302:
        raise SystemExit(f"consent failed for {worker}: {done.status_code}")
    return client


class Pacer:
    """Hands out send times at a fixed rate until the duration ends; threads that fall behind send at
    once (the lag is reported), and nothing is sent after the end, so a slow server shortens the run."""

    def __init__(self, rate: float, duration: float, cap: int) -> None:
        self.interval, self.cap, self.issued = 1.0 / rate, cap, 0
        self.start = time.perf_counter() + 0.2
        self.end = self.start + duration
        self.lock = threading.Lock()

    def next_slot(self) -> float | None:
        with self.lock:
            if self.issued >= self.cap or time.perf_counter() >= self.end:
                return None  # bounded in time even when the server falls behind the schedule
            slot = self.start + self.issued * self.interval
            if slot >= self.end:
                return None
            self.issued += 1
        delay = slot - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        return slot


def annotate(client: httpx.Client, pacer: Pacer, results: dict[str, list[float]], lags: list[float],
             errors: list[str], lock: threading.Lock) -> None:
    def timed(name: str, method: str, url: str, **kwargs: object) -> httpx.Response | None:
        slot = pacer.next_slot()
        if slot is None:
            return None
        sent = time.perf_counter()
        try:
            response = client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            with lock:
                errors.append(f"{name}: {exc!r}")
            return None
        elapsed = time.perf_counter() - sent
        with lock:
            results[name].append(elapsed)
            lags.append(sent - slot)
        return response

    while True:
        nxt = timed("next (assign, 302)", "GET", f"/s/{SLUG}/")
        if nxt is None:
            return
        location = nxt.headers.get("location", "")
        if nxt.status_code != 302 or "/a/" not in location:
            with lock:
                errors.append(f"next: {nxt.status_code} {location}")
            return
        page = timed("rating page (GET)", "GET", location)
        if page is None:
            return
        token = CSRF_RE.search(page.text)
        if page.status_code != 200 or token is None:
            with lock:
                errors.append(f"rating page: {page.status_code}")
            return
        value = "5" if "Attention: choose 5." in page.text else "4"
        posted = timed("submit (POST, 302)", "POST", location,
                       data={"value": value, "comment": "", "csrfmiddlewaretoken": token.group(1)})
        if posted is None:
            return
        if posted.status_code != 302:
            with lock:
                errors.append(f"submit: {posted.status_code}")
            return


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def main() -> None:
    args = parse_args()
    port = args.port or free_port()
    data_dir = tempfile.mkdtemp(prefix="affect-bench-")
    env = server_env(args, data_dir)
    database_create(args)
    n_items = seed(args, env)
    proc = gunicorn_start(args, env, port)
    try:
        base = f"http://127.0.0.1:{port}"
        clients = [join(base, f"bench-{i:04d}") for i in range(args.users)]
        results: dict[str, list[float]] = defaultdict(list)
        lags: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        pacer = Pacer(args.rate, args.duration, args.max_requests)
        threads = [threading.Thread(target=annotate, args=(c, pacer, results, lags, errors, lock)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=args.duration + 120)
        wall = time.perf_counter() - pacer.start
        for client in clients:
            client.close()
    finally:
        gunicorn_stop(proc)
    ratings = int(subprocess.run(
        ["psql", f"{args.pg}/{DB_NAME}", "-Atc", "select count(*) from annotations_rating"],
        capture_output=True, text=True, check=False).stdout.strip() or 0)
    total = sum(len(v) for v in results.values())
    all_latencies = [x for v in results.values() for x in v]
    print(f"affect-eval rating load: {os.cpu_count()} CPUs, gunicorn {args.workers}x{args.threads} gthread, "
          f"PostgreSQL, {n_items} items (k={args.k}), {args.users} annotators")
    print(f"target {args.rate:.0f} req/s for {args.duration:.0f} s; sent {total} requests in {wall:.1f} s "
          f"= {total / wall:.1f} req/s; {ratings} ratings stored; {len(errors)} errors")
    print(f"{'endpoint':<22}{'n':>7}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    figures: dict[str, dict[str, float]] = {}
    for name, values in list(results.items()) + [("all", all_latencies)]:
        if not values:
            continue
        row = {"n": len(values), "rps": len(values) / wall, "p50_ms": percentile(values, 50) * 1000,
               "p99_ms": percentile(values, 99) * 1000, "max_ms": max(values) * 1000}
        figures[name] = row
        print(f"{name:<22}{row['n']:>7}{row['rps']:>9.1f}{row['p50_ms']:>9.1f}{row['p99_ms']:>9.1f}"
              f"{row['max_ms']:>9.1f}")
    if lags:
        print(f"send lag behind schedule: p50 {statistics.median(lags) * 1000:.1f} ms, "
              f"p99 {percentile(lags, 99) * 1000:.1f} ms (large = the client or server could not keep up)")
    verdict = figures.get("all", {}).get("p99_ms", float("inf")) < 50 and total / wall >= 0.95 * args.rate
    print(f"goal p99 < 50 ms at {args.rate:.0f} req/s: {'MET' if verdict else 'NOT MET'}")
    for line in errors[:5]:
        print("error:", line)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "figures": figures, "ratings": ratings,
                                               "errors": len(errors), "wall_s": wall}, indent=2))


if __name__ == "__main__":
    main()
