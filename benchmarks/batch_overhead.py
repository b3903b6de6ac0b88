"""Orchestration overhead of a Batch: the same VA work (the cheap `dataset` source, so the bookkeeping is
what shows) run as a batch with eager Celery, and inline (`batch_run_inline`, what `--inline` and
run_experiment do), vs direct calls of the stage service, in the same run.

Run:  python benchmarks/batch_overhead.py [--samples 960] [--chunk 16] [--repeats 3]
Uses a throw-away PostgreSQL test database (evalplatform.settings_test).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalplatform.settings_test")
os.environ.setdefault("TEST_DB_SUFFIX", "_batchbench")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=960)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.samples < 1 or args.chunk < 1 or args.repeats < 1:
        parser.error("--samples, --chunk and --repeats must be positive")

    from inference.models import Batch, Dataset, Sample, VAEstimate
    from inference.services.batches import batch_queue, batch_run_inline
    from inference.services.va import va_extract_samples

    name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        dataset = Dataset.objects.create(name="bench", format="manifest")
        Sample.objects.bulk_create(
            Sample(dataset=dataset, external_id=f"s{i}", image=f"x/{i}.png", image_sha256=f"{i:064d}", width=1,
                   height=1, gt_valence=0.1, gt_arousal=0.2) for i in range(args.samples))
        ids = list(dataset.samples.order_by("id").values_list("id", flat=True))
        chunks = -(-args.samples // args.chunk)
        direct_times, batch_times, inline_times = [], [], []
        for _ in range(args.repeats):
            VAEstimate.objects.all().delete()
            started = time.perf_counter()
            for start in range(0, len(ids), args.chunk):
                va_extract_samples(sample_ids=ids[start:start + args.chunk], source="dataset")
            direct_times.append(time.perf_counter() - started)

            VAEstimate.objects.all().delete()
            started = time.perf_counter()
            batch = batch_queue(dataset=dataset, stages=["va"], va_source="dataset", chunk_size=args.chunk)
            batch_times.append(time.perf_counter() - started)
            batch.refresh_from_db()
            if (batch.status, batch.done) != (Batch.Status.SUCCEEDED, args.samples):
                raise SystemExit(f"batch ended {batch.status} with {batch.done} done")

            VAEstimate.objects.all().delete()
            started = time.perf_counter()
            batch = batch_queue(dataset=dataset, stages=["va"], va_source="dataset", chunk_size=args.chunk,
                                inline=True)
            batch = batch_run_inline(batch_id=batch.pk)
            inline_times.append(time.perf_counter() - started)
            if (batch.status, batch.done) != (Batch.Status.SUCCEEDED, args.samples):
                raise SystemExit(f"inline batch ended {batch.status} with {batch.done} done")
        direct, batched = statistics.median(direct_times), statistics.median(batch_times)
        inline = statistics.median(inline_times)
        print(f"{args.samples} samples in {chunks} chunks of {args.chunk}, median of {args.repeats} runs")
        print(f"direct service calls : {direct:6.2f} s")
        print(f"batch (eager Celery) : {batched:6.2f} s   ratio {batched / direct:.2f}, "
              f"overhead {(batched - direct) / chunks * 1000:.1f} ms per chunk")
        print(f"batch (inline)       : {inline:6.2f} s   ratio {inline / direct:.2f}, "
              f"overhead {(inline - direct) / chunks * 1000:.1f} ms per chunk")
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)


if __name__ == "__main__":
    main()
