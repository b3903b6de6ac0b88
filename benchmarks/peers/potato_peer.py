"""Potato (potato-annotation 2.12.1) as the rating-flow peer: a generated Likert task served the way its
production image serves it (gunicorn on the `create_app` factory, one worker — Potato keeps its state in
one process's memory and refuses more — and 8 threads, its deploy default), on loopback only.

Used by `benchmarks/rating_load.py --peers`; the venv comes from `benchmarks/peers/setup.sh potato`.
Per item an annotator does what Potato's own page does: GET /annotate (the page), POST /updateinstance
(the answer, JSON), POST /annotate {"action": "next_instance"} (move on).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from loadclient import KeepAliveClient, status_of  # benchmarks/ is on the path of the scripts using this

VENV = Path(__file__).resolve().parent / ".venvs" / "potato"
GUNICORN = VENV / "bin" / "gunicorn"
INSTANCE_RE = re.compile(r'name="instance_id" type="hidden" value="([^"]+)"')
CONFIG = """\
annotation_task_name: "Likert benchmark"
task_dir: "."
output_annotation_dir: "annotation_output/"
output_annotation_format: "json"
data_files: ["data/items.jsonl"]
item_properties: {id_key: "id", text_key: "text"}
user_config: {allow_all_users: true, users: []}
login: {type: url_direct, url_argument: PROLIFIC_PID}
annotation_schemes:
  - annotation_type: likert
    name: match
    description: "How well does this description match the person's emotional expression?"
    min_label: "not at all"
    max_label: "perfectly"
    size: 5
"""


def potato_available() -> str | None:
    """None when the peer can run, else why not."""
    if not GUNICORN.is_file():
        return f"no Potato venv at {VENV} (run benchmarks/peers/setup.sh potato)"
    return None


def potato_start(port: int, items: int) -> tuple[subprocess.Popen, str]:
    """Write a fresh task directory with `items` Likert items and start Potato on 127.0.0.1:port."""
    task = Path(tempfile.mkdtemp(prefix="potato-bench-"))
    (task / "data").mkdir()
    with (task / "data" / "items.jsonl").open("w") as handle:
        for i in range(items):
            handle.write(json.dumps({"id": f"item{i}",
                                     "text": f"The person looks calm, slightly pleased and relaxed ({i})."}) + "\n")
    (task / "config.yaml").write_text(CONFIG)
    env = {**os.environ, "POTATO_NONINTERACTIVE": "1", "HOME": str(task), "PYTHONWARNINGS": "ignore"}
    command = [str(GUNICORN), "--workers", "1", "--worker-class", "gthread", "--threads", "8", "--bind",
               f"127.0.0.1:{port}", "--log-level", "warning", "--keep-alive", "30",
               "potato.flask_server:create_app('config.yaml')"]
    log = (task / "server.log").open("w")
    proc = subprocess.Popen(command, cwd=task, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180  # it indexes its items and builds its layout at start
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Potato exited at start; see {task / 'server.log'}")
        if status_of(f"http://127.0.0.1:{port}", "/health") == 200:
            return proc, str(task)
        time.sleep(0.5)
    server_stop(proc)
    raise RuntimeError("Potato did not answer within 180 s")


def server_stop(proc: subprocess.Popen) -> None:
    """Stop a server started with start_new_session=True (gunicorn's master and workers): TERM, then KILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def potato_join(base: str, worker: str) -> KeepAliveClient:
    client = KeepAliveClient(base, timeout=10)
    response = client.get("/", params={"PROLIFIC_PID": worker, "STUDY_ID": "b", "SESSION_ID": worker})
    if response.status_code not in (200, 302):
        raise RuntimeError(f"Potato login failed for {worker}: {response.status_code}")
    return client


def potato_stored(task: str) -> int:
    """Annotations Potato stored (its per-user state files), to check the load really annotated."""
    count = 0
    for state in Path(task, "annotation_output").glob("*/user_state.json"):
        try:
            labels = json.loads(state.read_text()).get("instance_id_to_label_to_value", {})
        except (OSError, ValueError):
            continue
        count += len(labels)
    return count
