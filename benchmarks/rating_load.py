"""Load test of the rating flow: gunicorn + PostgreSQL on loopback, optionally against Potato in the same run.

Goals: issue #6, p99 < 50 ms at 200 requests/s on 2 cores; issue #17, items rated per second at
saturation >= 1.5x Potato's on the same run, and p99 < 50 ms at half of our saturation rate.

What it does, all on 127.0.0.1:
1. (re)creates the database `affect_bench`, migrates it, seeds one open study (N items, k raters);
2. starts gunicorn on the real WSGI app (DEBUG off, persistent DB connections; 2 x CPUs + 1 processes of one
   thread each by default);
3. joins U crowd annotators (Prolific links + consent; not timed);
4. paces requests at --rate per second for --duration seconds (at most --max-requests), each virtual
   annotator (a thread with one keep-alive connection, benchmarks/loadclient.py) looping over items: GET the
   rating page → POST the rating, whose 302 leads straight to the next item's page (GET /s/<slug>/, the
   assignment redirect, only when the answer sends it there);
5. prints throughput (requests and items per second), p50/p99 per endpoint, send to last byte, and the load
   generator's own CPU per request (it shares the machine with the servers).
With --peers, the same load (same users, rate, duration and client) then runs against Potato
(benchmarks/peers/potato_peer.py: GET /annotate → POST /updateinstance → POST /annotate next), and the
items-per-second ratio is printed. With --saturate, both run open-loop at --rate (set it above what
either can serve), and ours runs again paced at half of its measured saturation for the p99 goal.

Run:  python benchmarks/rating_load.py --rate 200 --duration 20
      python benchmarks/rating_load.py --peers --saturate --rate 600 --duration 15
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from loadclient import ClientError, KeepAliveClient, Response, status_of  # noqa: E402 - after the path insert
from peers.potato_peer import server_stop  # noqa: E402

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
    # One request per process at a time, like the image's sync workers, sized by gunicorn's 2 x cores + 1 rule:
    # threads of one process share its GIL, and two busy ones take turns every 5 ms (2x4 threads gave a
    # 20 % lower saturation and a longer tail on 2 cores). gthread keeps the client's connections alive.
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1,
                        help="gunicorn worker processes (default 2 x CPUs + 1).")
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker (gthread).")
    parser.add_argument("--port", type=int, default=0, help="Port (default: a free one).")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL.")
    parser.add_argument("--json", help="Also write the figures to this JSON file.")
    parser.add_argument("--peers", action="store_true", help="Run the same load against Potato too.")
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", ""),
                        help="Redis URL for the cache and sessions, as deployed (default: $REDIS_URL; empty: none).")
    parser.add_argument("--saturate", action="store_true",
                        help="Saturation run at --rate, then ours again at half its saturation (p99 goal).")
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
        "DB_CONN_MAX_AGE": "60", "REDIS_URL": args.redis, "CELERY_TASK_ALWAYS_EAGER": "1", "DATA_DIR": data_dir,
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
        if status_of(f"http://127.0.0.1:{port}", "/pipeline/healthz", timeout=1) == 200:
            return proc
        time.sleep(0.2)
    server_stop(proc)
    raise SystemExit("gunicorn did not answer within 30 s")



def join(base: str, worker: str) -> KeepAliveClient:
    client = KeepAliveClient(base, timeout=10)
    page = client.get(f"/s/{SLUG}/join", params={"PROLIFIC_PID": worker, "STUDY_ID": "b", "SESSION_ID": worker})
    for _ in range(5):  # join → consent (redirects on this site's own paths)
        if page.status_code not in (301, 302) or not page.headers.get("location", "").startswith("/"):
            break
        page = client.get(page.headers["location"])
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


def _timer(pacer: Pacer, results: dict[str, list[float]], lags: list[float], errors: list[str],
           lock: threading.Lock, client: KeepAliveClient):  # noqa: ANN202 - a closure
    def timed(name: str, method: str, url: str, **kwargs: object) -> Response | None:
        slot = pacer.next_slot()
        if slot is None:
            return None
        sent = time.perf_counter()
        try:
            response = client.request(method, url, **kwargs)
        except ClientError as exc:
            with lock:
                errors.append(f"{name}: {exc!r}")
            return None
        elapsed = time.perf_counter() - sent
        with lock:
            results[name].append(elapsed)
            lags.append(sent - slot)
        return response
    return timed


def _fail(errors: list[str], lock: threading.Lock, message: str) -> None:
    with lock:
        errors.append(message)


def annotate(client: KeepAliveClient, pacer: Pacer, results: dict[str, list[float]], lags: list[float],
             errors: list[str], lock: threading.Lock) -> None:
    timed = _timer(pacer, results, lags, errors, lock, client)
    location = f"/s/{SLUG}/"
    while True:
        if "/a/" not in location:  # the assignment redirect: the first item, or when the answer sent us here
            nxt = timed("next (assign, 302)", "GET", location)
            if nxt is None:
                return
            location = nxt.headers.get("location", "")
            if nxt.status_code != 302 or "/a/" not in location:
                return _fail(errors, lock, f"next: {nxt.status_code} {location}")
        page = timed("rating page (GET)", "GET", location)
        if page is None:
            return
        token = CSRF_RE.search(page.text)
        if page.status_code != 200 or token is None:
            return _fail(errors, lock, f"rating page: {page.status_code}")
        value = "5" if "Attention: choose 5." in page.text else "4"
        posted = timed("submit (POST, 302)", "POST", location,
                       data={"value": value, "comment": "", "csrfmiddlewaretoken": token.group(1)})
        if posted is None:
            return
        if posted.status_code != 302:
            return _fail(errors, lock, f"submit: {posted.status_code}")
        with lock:
            results["items"].append(0.0)
        location = posted.headers.get("location", "")


def annotate_potato(client: KeepAliveClient, pacer: Pacer, results: dict[str, list[float]], lags: list[float],
                    errors: list[str], lock: threading.Lock) -> None:
    from peers.potato_peer import INSTANCE_RE

    timed = _timer(pacer, results, lags, errors, lock, client)
    while True:
        page = timed("potato page (GET)", "GET", "/annotate")
        if page is None:
            return
        found = INSTANCE_RE.search(page.text)
        if page.status_code != 200 or found is None:
            return _fail(errors, lock, f"potato page: {page.status_code}")
        instance = found.group(1)
        saved = timed("potato save (POST)", "POST", "/updateinstance",
                      json={"instance_id": instance, "annotations": {"match:scale_4": "4"}})
        if saved is None:
            return
        if saved.status_code != 200 or '"success"' not in saved.text:
            return _fail(errors, lock, f"potato save: {saved.status_code} {saved.text[:100]}")
        with lock:
            results["items"].append(0.0)
        moved = timed("potato next (POST)", "POST", "/annotate", json={"action": "next_instance",
                                                                     "instance_id": instance},
                      headers={"X-Potato-Navigation": "1"})
        if moved is None:
            return
        if moved.status_code != 200:
            return _fail(errors, lock, f"potato next: {moved.status_code}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def run_load(clients: list[KeepAliveClient], cycle, rate: float, args: argparse.Namespace) -> dict:  # noqa: ANN001
    results: dict[str, list[float]] = defaultdict(list)
    lags: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    pacer = Pacer(rate, args.duration, args.max_requests)
    cpu_start = time.process_time()
    threads = [threading.Thread(target=cycle, args=(c, pacer, results, lags, errors, lock)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.duration + 120)
    wall = time.perf_counter() - pacer.start
    client_cpu = time.process_time() - cpu_start
    items = len(results.pop("items", []))
    return {"results": results, "lags": lags, "errors": errors, "wall": wall, "items": items, "rate": rate,
            "client_cpu": client_cpu}


def report(title: str, run: dict) -> dict[str, dict[str, float]]:
    results, wall = run["results"], run["wall"]
    total = sum(len(v) for v in results.values())
    all_latencies = [x for v in results.values() for x in v]
    print(title)
    print(f"target {run['rate']:.0f} req/s; sent {total} requests in {wall:.1f} s = {total / wall:.1f} req/s; "
          f"{run['items']} items rated = {run['items'] / wall:.1f} items/s; {len(run['errors'])} errors")
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
    if total:
        print(f"the load generator's own CPU: {run['client_cpu'] / total * 1000:.2f} ms per request "
              f"({run['client_cpu'] / wall * 100:.0f} % of one core)")
    if run["lags"]:
        print(f"send lag behind schedule: p50 {statistics.median(run['lags']) * 1000:.1f} ms, "
              f"p99 {percentile(run['lags'], 99) * 1000:.1f} ms (large = the client or server could not keep up)")
    for line in run["errors"][:5]:
        print("error:", line)
    figures["items"] = {"n": run["items"], "per_s": run["items"] / wall}
    return figures


def run_ours(args: argparse.Namespace, rates: list[float]) -> list[dict]:
    port = args.port or free_port()
    data_dir = tempfile.mkdtemp(prefix="affect-bench-")
    env = server_env(args, data_dir)
    database_create(args)
    n_items = seed(args, env)
    proc = gunicorn_start(args, env, port)
    runs = []
    try:
        base = f"http://127.0.0.1:{port}"
        for i, rate in enumerate(rates):
            clients = [join(base, f"bench-{i}-{u:04d}") for u in range(args.users)]
            run = run_load(clients, annotate, rate, args)
            run["n_items"] = n_items
            runs.append(run)
            for client in clients:
                client.close()
            if i == 0 and len(rates) > 1 and rates[1] <= 0:  # half of the measured saturation
                total = sum(len(v) for v in run["results"].values())
                rates[1] = total / run["wall"] / 2
    finally:
        server_stop(proc)
    return runs


def run_potato(args: argparse.Namespace) -> dict | str:
    from peers.potato_peer import potato_available, potato_join, potato_start, potato_stored

    why = potato_available()
    if why:
        return f"skipped: {why}"
    port = free_port()
    try:
        proc, task = potato_start(port, min(args.items, 200))
    except RuntimeError as exc:
        return f"skipped: {exc}"
    try:
        clients = [potato_join(f"http://127.0.0.1:{port}", f"bench-{u:04d}") for u in range(args.users)]
        run = run_load(clients, annotate_potato, args.rate, args)
        for client in clients:
            client.close()
    finally:
        server_stop(proc)
    run["stored"] = potato_stored(task)
    return run


def main() -> None:
    args = parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start (a shared machine: compare "
          "the two systems within this run, not with other runs)")
    rates = [args.rate, 0.0] if args.saturate else [args.rate]
    runs = run_ours(args, rates)
    ours = runs[0]
    ratings = int(subprocess.run(
        ["psql", f"{args.pg}/{DB_NAME}", "-Atc", "select count(*) from annotations_rating"],
        capture_output=True, text=True, check=False).stdout.strip() or 0)
    figures = report(f"affect-eval: gunicorn {args.workers}x{args.threads} gthread, PostgreSQL, "
                     f"{ours['n_items']} items (k={args.k}), {args.users} annotators; {ratings} ratings stored "
                     f"over all runs", ours)
    summary: dict = {"ours": figures}
    if not args.saturate:
        total = figures.get("all", {}).get("n", 0)
        verdict = figures.get("all", {}).get("p99_ms", float("inf")) < 50 and total / ours["wall"] >= 0.95 * args.rate
        print(f"goal p99 < 50 ms at {args.rate:.0f} req/s: {'MET' if verdict else 'NOT MET'}")
    if args.peers:
        potato = run_potato(args)
        if isinstance(potato, str):
            print(f"potato {potato}")
        else:
            theirs = report(f"Potato 2.12.1: gunicorn 1x8 gthread (its production image's layout), "
                            f"{min(args.items, 200)} items, {args.users} annotators; "
                            f"{potato['stored']} annotations in its state files", potato)
            summary["potato"] = theirs
            ratio = figures["items"]["per_s"] / max(theirs["items"]["per_s"], 1e-9)
            print(f"items/s at {args.rate:.0f} req/s offered: ours {figures['items']['per_s']:.1f} vs Potato "
                  f"{theirs['items']['per_s']:.1f} = {ratio:.2f}x"
                  + (f" (goal >= 1.5x at saturation: {'MET' if ratio >= 1.5 else 'NOT met'})" if args.saturate else ""))
    if args.saturate:
        half = report(f"affect-eval again at half of its saturation ({rates[1]:.0f} req/s)", runs[1])
        summary["ours_half"] = half
        p99 = half.get("all", {}).get("p99_ms", float("inf"))
        print(f"goal p99 < 50 ms at half of our saturation ({rates[1]:.0f} req/s): p99 {p99:.1f} ms, "
              f"{'MET' if p99 < 50 else 'NOT met'}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), **summary}, indent=2))


if __name__ == "__main__":
    main()
