"""`python manage.py demo`: the whole pipeline on the sample faces, a demo study and demo accounts.

Lives in `annotations` because it creates a study (annotations may import inference, never the reverse).
Safe to re-run: every stage reuses what exists.
"""
from __future__ import annotations

import os
from argparse import ArgumentParser
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from inference.models import Batch, Dataset, LLMConfig, PromptTemplate, Similarity
from inference.services.batches import (
    BatchInvalid,
    batch_progress,
    batch_queue,
    batch_queued_message,
    batch_stages_todo,
)
from inference.services.imports import ImportFailed, dataset_import
from inference.services.llm import llm_config_defaults_ensure, prompt_defaults_ensure
from inference.stages import PlanInput

DEMO_DATASET = "demo-faces"
DEMO_STUDY = "demo-study"
DEMO_PAIRWISE = "demo-pairwise"
DEMO_PASSWORD = "affect-eval-demo"
EMBEDDERS = tuple(Similarity.Family.values)


class Command(BaseCommand):
    help = ("Run the demo: import the sample faces, extract VA, generate descriptions and categories with "
            "the offline models, compute similarity with all embedders, create a demo study and accounts.")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--manifest", default=None,
                            help="Manifest to import (default: ASSETS_DIR/faces/demo-manifest.csv).")
        parser.add_argument("--skip-llm", action="store_true",
                            help="Skip the local GGUF model (only the lexicon baseline generates).")
        parser.add_argument("--raters", type=int, default=3, help="k raters per item in the demo study.")

    def handle(self, *args, manifest: str | None, skip_llm: bool, raters: int, **options) -> None:
        say = self.stdout.write
        if raters < 1:  # checked before the pipeline's minutes of work, not by the study at the end
            raise CommandError(f"--raters must be at least 1, not {raters}")
        call_command("migrate", verbosity=0)

        path = Path(manifest) if manifest else Path(settings.ASSETS_DIR) / "faces" / "demo-manifest.csv"
        if not path.exists():
            raise CommandError(f"demo manifest not found at {path} (set ASSETS_DIR or pass --manifest)")
        try:
            report = dataset_import(path=path, name=DEMO_DATASET, fmt="manifest")
        except ImportFailed as exc:
            raise CommandError(str(exc)) from exc
        say(f"[1/4] import: {report.summary()}")
        dataset = Dataset.objects.get(name=DEMO_DATASET)

        if settings.FACECHANNEL_WEIGHTS:
            source = "facechannel"
            say(f"[2/4] VA source: FaceChannel, weights {settings.FACECHANNEL_WEIGHTS}")
        else:
            source = "expression"
            say("[2/4] VA source: FACECHANNEL_WEIGHTS is not set, so VA is DERIVED from the FER2013 "
                "mini-Xception expression classifier (source 'expression'), not FaceChannel.")
        prompt_defaults_ensure()
        llm_config_defaults_ensure()
        configs = ["lexicon-warriner"] + ([] if skip_llm else ["smollm2-gguf"])
        prompts = [PromptTemplate.objects.filter(name=name).order_by("-version").first()
                   for name in ("describe", "categorize-basic")]
        say(f"      batch: va → generate ({', '.join(configs)} × describe, categorize-basic) → "
            f"similarity ({', '.join(EMBEDDERS)}); results already computed are reused")
        config_rows = list(LLMConfig.objects.filter(name__in=configs))
        spec = PlanInput(dataset_id=dataset.pk, va_source=source, config_ids=[c.pk for c in config_rows],
                         prompt_ids=[p.pk for p in prompts], embedders=list(EMBEDDERS))
        stages, previews = batch_stages_todo(stages=["va", "generate", "similarity"], spec=spec)
        for name, preview in previews.items():
            if name not in stages:
                say(f"      {name}: nothing to do ({preview['note']})")
        if stages:
            try:
                batch = batch_queue(dataset=dataset, stages=stages, va_source=source, configs=config_rows,
                                    prompts=prompts, embedders=list(EMBEDDERS))
            except BatchInvalid as exc:
                raise CommandError(str(exc)) from exc
            say(f"      {batch_queued_message(batch=batch)} Progress: /pipeline/batches/{batch.pk}/")
            batch = self._wait(batch, Batch)
            for stage in batch_progress(batch=batch)["stages"]:
                if stage["planned"]:
                    say(f"      {stage['stage']}: {stage['done']} done, {stage['failed']} failed"
                        + (f", {stage['reused']} reused" if stage["reused"] else ""))
                else:
                    say(f"      {stage['stage']}: nothing to do ({stage['note'] or 'not reached'})")
            if batch.status != Batch.Status.SUCCEEDED:
                say(f"      batch {batch.pk} {batch.status}: {batch.error} (details on /pipeline/batches/{batch.pk}/)")

        accounts = self._accounts()
        say(f"[3/4] accounts (password for all: {DEMO_PASSWORD}): {', '.join(accounts)}")

        study = self._study(dataset=dataset, configs=configs, raters=raters)
        say(f"[4/4] study {study.slug!r}: {study.items.count()} items, k={study.raters_per_item}, "
            f"owner {study.owner.get_username() if study.owner else '(none)'}")
        pairwise, why = self._pairwise_study(dataset=dataset, configs=configs, raters=raters)
        if pairwise is None:
            say(f"      no pairwise study: {why}")
        else:
            say(f"      pairwise study {pairwise.slug!r}: {pairwise.items.count()} units (which of two "
                f"descriptions fits the face better), k={pairwise.raters_per_item}")
        base = "http://" + os.environ.get("DEMO_ADDR", "127.0.0.1:8000")
        say("")
        say(f"Open {base}/ —")
        say("  annotators: log in as demo-annotator-1 (…-3), or join as a crowd worker:")
        say(f"    {base}/s/{study.slug}/join?PROLIFIC_PID=demo-worker-1&STUDY_ID=demo&SESSION_ID=s1")
        say(f"  researcher: demo-researcher → {base}/studies/{study.slug}/manage/ "
            f"(preview as a participant: {base}/studies/{study.slug}/preview/)")
        say(f"  admin:      demo-admin → {base}/admin/ (batches: /pipeline/batches/)")

    def _pairwise_study(self, *, dataset, configs: list[str], raters: int):
        """(study, "") — a pairwise comparison of the same descriptions, when at least two systems describe the
        faces — or (None, why not). Made by the same service as the web form, owned by demo-researcher."""
        from django.contrib.auth.models import User

        from annotations.models import Study
        from annotations.services.studies import StudyInvalid, study_create

        existing = Study.objects.filter(slug=DEMO_PAIRWISE).first()
        if existing:
            return existing, ""
        if len(configs) < 2:
            return None, "only one system describes each face (run without --skip-llm for two)"
        try:
            study = study_create(name="Demo: which description fits the face better?", slug=DEMO_PAIRWISE,
                                 dataset=dataset, config_names=configs, prompt_names=["describe"], k=raters,
                                 open_now=True, owner=User.objects.get(username="demo-researcher"),
                                 kind=Study.Kind.PAIRWISE, expected_minutes=3, pay_per_hour="9.00")
        except StudyInvalid as exc:
            return None, str(exc)
        return study, ""

    def _wait(self, batch, batch_model, timeout_s: float = 3600):
        """Poll the row until the worker (the embedded one in the demo) has finished it."""
        import time

        deadline = time.monotonic() + timeout_s
        said = 0.0
        while True:
            batch.refresh_from_db()
            if batch.status not in (batch_model.Status.QUEUED, batch_model.Status.RUNNING):
                return batch
            if time.monotonic() - said >= 5:
                said = time.monotonic()
                self.stdout.write(f"      waiting for the Celery worker: batch {batch.pk} {batch.current_stage}, "
                                  f"{batch.done + batch.failed}/{batch.total} items "
                                  f"(progress also on /pipeline/batches/{batch.pk}/)")
            if time.monotonic() > deadline:
                raise CommandError(f"batch {batch.pk} still {batch.status} after {timeout_s:.0f} s; is a Celery "
                                   "worker running (scripts/demo.sh starts `manage.py embedded_worker`)?")
            time.sleep(1)

    def _accounts(self) -> list[str]:
        from django.contrib.auth.models import Group, User

        from annotations.models import RESEARCHER_GROUP

        names = []
        admin, created = User.objects.get_or_create(username="demo-admin",
                                                    defaults={"is_staff": True, "is_superuser": True})
        researcher, _ = User.objects.get_or_create(username="demo-researcher", defaults={"is_staff": True})
        researcher.groups.add(Group.objects.get_or_create(name=RESEARCHER_GROUP)[0])
        users = [admin, researcher]
        for i in range(1, 4):
            users.append(User.objects.get_or_create(username=f"demo-annotator-{i}")[0])
        for user in users:
            user.set_password(DEMO_PASSWORD)
            user.save()
            names.append(user.username)
        return names

    def _study(self, *, dataset, configs: list[str], raters: int):
        from django.contrib.auth.models import User

        from annotations.models import Study
        from annotations.services.studies import study_create

        owner = User.objects.get(username="demo-researcher")
        existing = Study.objects.filter(slug=DEMO_STUDY).first()
        if existing:
            if existing.owner_id is None:  # made by an older demo, before studies had owners
                Study.objects.filter(pk=existing.pk).update(owner=owner)
            return existing
        # The same service as the researcher's web form and `create_study --owner`.
        return study_create(name="Demo: do descriptions match the face?", slug=DEMO_STUDY, dataset=dataset,
                            config_names=configs, prompt_names=["describe"], k=raters, open_now=True,
                            owner=owner, expected_minutes=3, pay_per_hour="9.00")
