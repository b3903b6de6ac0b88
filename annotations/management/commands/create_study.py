"""`python manage.py create_study`: a study from a selection of Generations, with its check items.

Re-running with the slug of an existing study adds the generations that have appeared since (and any
new check items) instead of failing or duplicating.
"""
from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotations.models import PROLIFIC_COMPLETION_URL, Study
from annotations.services.studies import (
    FAILED_CHECK_ACTIONS,
    StudyInvalid,
    check_item_parse,
    dataset_resolve,
    generations_select,
    study_check_items_add,
    study_create,
    study_items_add,
    study_status_set,
)
from inference.models import Generation, PromptTemplate


def _read_text(path: str | None, what: str) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # missing, a folder, or not UTF-8 text
        raise CommandError(f"cannot read the {what} file {path}: {exc}") from exc


def _check_items(specs: list[str], file_path: str | None) -> list[Any]:
    items: list[Any] = [check_item_parse(spec) for spec in specs]
    if file_path:
        try:
            data = json.loads(_read_text(file_path, "check items"))
        except json.JSONDecodeError as exc:
            raise CommandError(f"{file_path}: not valid JSON ({exc})") from exc
        if not isinstance(data, list):
            raise CommandError(f"{file_path}: expected a JSON list of {{text, expected_min, expected_max, kind}}")
        items += [check_item_parse(entry) for entry in data]
    return items


def _user(username: str, flag: str) -> Any:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"{flag}: no user {username!r}")
    return user


class Command(BaseCommand):
    help = "Create an annotation study from Generations (by dataset, LLM config, prompt and task)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--name", required=True, help="Study name shown to annotators.")
        parser.add_argument("--slug", help="URL slug (default: from the name). An existing slug is topped up.")
        parser.add_argument("--dataset", help="Dataset name whose generations are rated (default: any).")
        parser.add_argument("--config", action="append", default=[], dest="configs",
                            help="LLM config name; repeat for several (default: all).")
        parser.add_argument("--prompt", action="append", default=[], dest="prompts",
                            help="Prompt name, all versions; repeat for several (default: all).")
        parser.add_argument("--task", default=PromptTemplate.Task.DESCRIBE, choices=PromptTemplate.Task.values,
                            help="Generation task (default: describe).")
        parser.add_argument("--any-status", action="store_true",
                            help="Include unparseable/flagged generations too (default: status ok only).")
        parser.add_argument("--k", type=int, default=3, help="Distinct raters per item (default: 3).")
        parser.add_argument("--question", help="The question above the scale (default: the Likert match question).")
        parser.add_argument("--scale-min", type=int, default=1, help="Lowest scale point (default: 1).")
        parser.add_argument("--scale-max", type=int, default=5, help="Highest scale point (default: 5).")
        parser.add_argument("--scale-labels", help="Labels for every point, lowest first, separated by '|'.")
        parser.add_argument("--no-image", action="store_true", help="Do not show the photo.")
        parser.add_argument("--show-va", action="store_true", help="Show the valence/arousal numbers.")
        parser.add_argument("--show-reference", action="store_true", help="Show the reference description(s).")
        parser.add_argument("--instructions-file", help="Text file with the instructions.")
        parser.add_argument("--consent-file", help="Text file with the consent text.")
        parser.add_argument("--completion-code", help="Code shown at the end (default: random).")
        parser.add_argument("--attention", action="append", default=[],
                            help="Attention item 'TEXT|MIN|MAX' (accepted rating range); repeatable.")
        parser.add_argument("--checks-file",
                            help="JSON list of {text, expected_min, expected_max, kind: attention|gold}.")
        parser.add_argument("--max-failed-checks", type=int, default=0,
                            help="Exclude an annotator who fails more checks than this (default: 0).")
        parser.add_argument("--min-median-seconds", type=float, default=0.0,
                            help="Exclude an annotator whose median time per item is below this (default: off).")
        parser.add_argument("--failed-check-action", default=Study.FailedCheckAction.WARN, choices=FAILED_CHECK_ACTIONS,
                            help="What the annotator sees after a failed check (default: warn).")
        parser.add_argument("--timeout-minutes", type=int, default=30,
                            help="Minutes before an abandoned assignment returns to the pool (default: 30).")
        parser.add_argument("--owner", help="Username of the researcher who owns the study (required for a new "
                                            "study: only the owner, collaborators and superusers see it).")
        parser.add_argument("--collaborator", action="append", default=[], dest="collaborators",
                            help="Username of a researcher who shares the study; repeatable.")
        parser.add_argument("--items-per-participant", type=int,
                            help="Items one participant rates at most, checks on top (default: all).")
        parser.add_argument("--max-participants", type=int, help="Cap on participants (default: none).")
        parser.add_argument("--expected-minutes", type=int, help="Expected minutes per participant (for pay).")
        parser.add_argument("--pay-per-hour", help="Pay per hour, e.g. 9.00 (reward = minutes/60 x this).")
        parser.add_argument("--currency", default="GBP", help="Currency of the pay (default: GBP).")
        parser.add_argument("--completion-url", default=PROLIFIC_COMPLETION_URL,
                            help="Where Prolific participants go at the end; {code} is the code "
                                 f"(default: {PROLIFIC_COMPLETION_URL.replace('%', '%%')}; '' for none).")
        parser.add_argument("--early-finish", default=Study.EarlyFinish.PARTIAL_CODE,
                            choices=Study.EarlyFinish.values,
                            help="What 'finish now' gives: partial (a partial-completion code), code (the "
                                 "completion code) or none (default: partial).")
        parser.add_argument("--kind", default=Study.Kind.LIKERT, choices=Study.Kind.values,
                            help="likert (rate one description), bws (best and worst of 4 descriptions of one "
                                 "face) or pairwise (the better of 2); default: likert.")
        parser.add_argument("--allow-ties", action="store_true", help="Pairwise: offer 'equally good'.")
        parser.add_argument("--unit-appearances", type=int, default=8,
                            help="Comparative: units each description appears in (default: 8, K&M's 2N 4-tuples).")
        parser.add_argument("--design-seed", type=int, default=0,
                            help="Comparative: seed of the tuple design (default: 0; same seed, same design).")
        parser.add_argument("--gold-unit", action="append", default=[], dest="gold_units",
                            help="Comparative check unit 'BEST|...|WORST' (4 texts for bws, 2 for pairwise; the "
                                 "first is the known best, the last the known worst); repeatable.")
        parser.add_argument("--open", action="store_true", help="Open the study for annotators now.")

    def handle(self, *args: Any, **opts: Any) -> None:
        statuses = Generation.Status.values if opts["any_status"] else [Generation.Status.OK]
        try:
            checks = _check_items(opts["attention"], opts["checks_file"])
            existing = Study.objects.filter(slug=opts["slug"]).first() if opts["slug"] else None
            if existing is not None:
                if existing.kind != Study.Kind.LIKERT:
                    raise CommandError(f"study {existing.slug} is a {existing.get_kind_display()} study: its design "
                                       "is built once; create a new study for new descriptions")
                self._top_up(existing, opts, statuses, checks)
                return
            labels = opts["scale_labels"].split("|") if opts["scale_labels"] else None
            owner = _user(opts["owner"], "--owner") if opts["owner"] else None
            if owner is None:
                raise CommandError("--owner USERNAME is required: a study without an owner is visible to "
                                   "superusers only")
            collaborators = [_user(name, "--collaborator") for name in opts["collaborators"]]
            study = study_create(
                name=opts["name"], slug=opts["slug"], dataset=opts["dataset"], config_names=opts["configs"],
                prompt_names=opts["prompts"], k=opts["k"], task=opts["task"], statuses=statuses,
                question=opts["question"], scale_min=opts["scale_min"], scale_max=opts["scale_max"],
                scale_labels=labels, show_image=not opts["no_image"], show_va=opts["show_va"],
                show_reference=opts["show_reference"],
                instructions=_read_text(opts["instructions_file"], "instructions"),
                consent_text=_read_text(opts["consent_file"], "consent"),
                completion_code=opts["completion_code"], attention_items=checks,
                max_failed_checks=opts["max_failed_checks"], min_median_seconds=opts["min_median_seconds"],
                failed_check_action=opts["failed_check_action"],
                assignment_timeout_minutes=opts["timeout_minutes"], open_now=opts["open"],
                owner=owner, collaborators=collaborators, items_per_participant=opts["items_per_participant"],
                max_participants=opts["max_participants"], expected_minutes=opts["expected_minutes"],
                pay_per_hour=opts["pay_per_hour"], pay_currency=opts["currency"],
                completion_url_template=opts["completion_url"], early_finish=opts["early_finish"],
                kind=opts["kind"], allow_ties=opts["allow_ties"], unit_appearances=opts["unit_appearances"],
                design_seed=opts["design_seed"], gold_units=opts["gold_units"],
            )
        except StudyInvalid as exc:
            raise CommandError(str(exc)) from exc
        normal = study.items.filter(kind="normal").count()
        design = (study.selection or {}).get("design")
        if design:
            self.stdout.write(
                f"{study.get_kind_display()} design: {design['units']} units of {design['size']} over "
                f"{design['descriptions']} descriptions, each in {design['appearances_min']}-"
                f"{design['appearances_max']} units; {design['short_groups']} face(s) with too few descriptions "
                f"left out, {design['capped_groups']} with every possible unit used once"
            )
        self.stdout.write(
            f"study {study.slug}: {normal} items, {study.items.count() - normal} check items, "
            f"k={study.raters_per_item}, {study.status}, owner {study.owner.get_username()}; "
            f"join link /s/{study.slug}/join"
        )

    def _top_up(self, study: Study, opts: dict[str, Any], statuses: list[str], checks: list[Any]) -> None:
        dataset = dataset_resolve(opts["dataset"]) if opts["dataset"] else study.dataset
        generations = generations_select(
            dataset=dataset,
            config_names=opts["configs"], prompt_names=opts["prompts"], task=opts["task"], statuses=statuses,
        )
        with transaction.atomic():
            added = study_items_add(study=study, generations=generations)
            added_checks = study_check_items_add(study=study, check_items=checks)
            if opts["open"]:
                study_status_set(study=study, status=Study.Status.OPEN)
        self.stdout.write(
            f"study {study.slug} exists: {added} new items, {added_checks} new check items "
            f"({study.items.count()} in all), {study.status}"
        )

