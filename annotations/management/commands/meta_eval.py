"""Validate any metric against any human ratings: reliability, ceiling, correlations, comparisons."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations import agreement as A
from annotations import comparative as C
from annotations import metaeval as M
from annotations.csvinput import csv_input_open
from annotations.management.commands.agreement import ratings_csv_read

SCORE_COLUMNS = ("unit", "metric", "score")


def scores_csv_read(path: Path, *, rated_units: set[str]) -> tuple[dict[str, dict[str, float]], dict[str, str] | None,
                                                                  dict[str, str] | None]:
    """Scores per metric and unit, plus the optional system and group of each unit."""
    reader, header = csv_input_open(path, empty_hint="a header unit,metric,score[,system][,group]")
    missing = [c for c in SCORE_COLUMNS if c not in header]
    if missing:
        raise CommandError(f"{path}: missing column(s) {', '.join(missing)}; the header is {reader.fieldnames!r}")
    reader.fieldnames = header
    has_system, has_group = "system" in header, "group" in header
    scores: dict[str, dict[str, float]] = {}
    first_line: dict[tuple[str, str], int] = {}
    systems: dict[str, str] = {}
    groups: dict[str, str] = {}
    for row in reader:
        line = reader.line_num  # the row's last physical line (a quoted cell may span lines)
        unit, metric, raw = (str(row.get(c) or "").strip() for c in SCORE_COLUMNS)
        if not unit or not metric:
            raise CommandError(f"{path}:{line}: empty unit or metric")
        if unit not in rated_units:
            raise CommandError(f"{path}:{line}: unit {unit!r} has no rating in the ratings file")
        try:
            score = float(raw)
        except ValueError:
            raise CommandError(f"{path}:{line}: score {raw!r} is not a number") from None
        if not math.isfinite(score):
            raise CommandError(f"{path}:{line}: score {raw!r} is not a finite number")
        key = (unit, metric)
        if key in first_line:
            raise CommandError(f"{path}:{line}: metric {metric!r} scores unit {unit!r} twice "
                               f"(first on line {first_line[key]})")
        first_line[key] = line
        scores.setdefault(metric, {})[unit] = score
        for column, target in (("system", systems), ("group", groups)):
            if column in header:
                value = str(row.get(column) or "").strip()
                if not value:
                    raise CommandError(f"{path}:{line}: empty {column}")
                if target.get(unit, value) != value:
                    raise CommandError(f"{path}:{line}: unit {unit!r} is in {column} {value!r} here but "
                                       f"{target[unit]!r} on an earlier line")
                target[unit] = value
    if not scores:
        raise CommandError(f"{path}: no scores (only a header)")
    for metric, values in scores.items():
        if len(values) < 2:
            line = first_line[(next(iter(values)), metric)]
            raise CommandError(f"{path}:{line}: metric {metric!r} has only one score; a correlation needs many")
    return scores, systems if has_system else None, groups if has_group else None


CHOICE_ALIASES = {"choice": ("choice", "rating_id"), "description": ("description", "generation_id"),
                  "chosen": ("chosen",), "unit": ("unit", "unit_id")}
CHOSEN = {"best": "best", "preferred": "best", "worst": "worst", "other": "worst", "tie": "tie", "": ""}


def choices_csv_read(path: Path) -> list[C.Choice]:
    """Best–worst / pairwise choices in long format (the study's choices.csv works as is).

    Columns: `choice` (or `rating_id`: one submitted judgment), `description` (or `generation_id`: matches
    the scores file's `unit`), `chosen` (best/worst, preferred/other, tie, or empty), optional `unit`
    (or `unit_id`: what was shown together, for the CIs; default: the choice).
    """
    reader, header = csv_input_open(path)
    column = {name: next((a for a in aliases if a in header), None) for name, aliases in CHOICE_ALIASES.items()}
    missing = [name for name in ("choice", "description", "chosen") if column[name] is None]
    if missing:
        raise CommandError(f"{path}: missing column(s) {', '.join(missing)} (choice, description, chosen[, unit]); "
                           f"the header is {reader.fieldnames!r}")
    reader.fieldnames = header
    judged: dict[str, dict[str, Any]] = {}
    for row in reader:
        line = reader.line_num  # the row's last physical line (a quoted cell may span lines)
        choice, description = (str(row.get(column[c]) or "").strip() for c in ("choice", "description"))
        chosen = str(row.get(column["chosen"]) or "").strip().lower()
        if not choice or not description:
            raise CommandError(f"{path}:{line}: empty choice or description")
        if chosen not in CHOSEN:
            raise CommandError(f"{path}:{line}: chosen {chosen!r} is not one of {', '.join(c for c in CHOSEN if c)} "
                               "or empty")
        entry = judged.setdefault(choice, {"shown": [], "best": None, "worst": None, "tie": False, "line": line,
                                           "unit": str(row.get(column["unit"]) or "").strip() if column["unit"]
                                           else choice})
        if description in entry["shown"]:
            raise CommandError(f"{path}:{line}: choice {choice!r} shows description {description!r} twice")
        entry["shown"].append(description)
        role = CHOSEN[chosen]
        if role in ("best", "worst"):
            if entry[role] is not None:
                raise CommandError(f"{path}:{line}: choice {choice!r} has two {role} descriptions")
            entry[role] = description
        entry["tie"] = entry["tie"] or role == "tie"
    if not judged:
        raise CommandError(f"{path}: no choices (only a header)")
    out = []
    for choice, e in judged.items():
        if not e["tie"] and (e["best"] is None or e["worst"] is None):
            raise CommandError(f"{path}:{e['line']}: choice {choice!r} lacks a best/preferred or a worst/other row")
        out.append(C.Choice(unit=e["unit"], shown=tuple(e["shown"]), best=e["best"], worst=e["worst"],
                            annotator=choice))
    try:
        C.choices_compile(out)
    except C.ComparativeInputError as exc:
        raise CommandError(f"{path}: {exc}") from None
    return out


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Command(BaseCommand):
    help = ("Meta-evaluate automatic metrics against human ratings from two CSV files: reliability (split-half, "
            "ICC), the ceiling sqrt(R), item/system/grouped correlations with CIs, and paired comparisons.")

    def add_arguments(self, parser: CommandParser) -> None:
        human = parser.add_mutually_exclusive_group(required=True)
        human.add_argument("--ratings", type=Path,
                           help="Long-format ratings CSV: unit,rater,value (one row per rating).")
        human.add_argument("--choices", type=Path,
                           help="Best–worst or pairwise choices instead of ratings: choice,description,chosen[,unit] "
                                "(a study's choices.csv works as is); the human score of a description is "
                                "%%best − %%worst, and each metric's agreement with the raw choices is added.")
        parser.add_argument("--scores", type=Path, required=True,
                            help="Metric scores CSV: unit,metric,score with optional system and group columns "
                                 "(a unit is one rated description; group = the sample it describes).")
        parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                            help="Bootstrap resamples over items (default 1000).")
        parser.add_argument("--seed", type=int, default=A.DEFAULT_SEED,
                            help=f"Bootstrap seed (default {A.DEFAULT_SEED}).")
        parser.add_argument("--confidence", type=float, default=0.95, help="Interval level (default 0.95).")
        parser.add_argument("--json", action="store_true", help="Print one JSON object instead of text.")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            A.bootstrap_params_check(resamples=opts["bootstrap"], confidence=opts["confidence"], seed=opts["seed"])
        except A.AgreementInputError as exc:
            raise CommandError(f"--bootstrap/--confidence/--seed: {exc}") from None
        choices = choices_csv_read(opts["choices"]) if opts["choices"] else None
        if choices is not None:
            units, raters, values = C.choice_contributions(choices)
        else:
            units, raters, values, _ = ratings_csv_read(opts["ratings"], level="interval")
        scores, systems, groups = scores_csv_read(opts["scores"], rated_units=set(units))
        result = M.metaeval_compute(units=units, raters=raters, values=values, scores=scores, systems=systems,
                                    groups=groups, resamples=opts["bootstrap"], seed=opts["seed"],
                                    confidence=opts["confidence"], znorm=choices is None)
        if choices is not None:
            result["choice_agreement"] = {
                metric: C.choice_agreement(choices, metric_scores=by_unit, metric=metric, resamples=opts["bootstrap"],
                                           seed=opts["seed"], confidence=opts["confidence"]).as_dict()
                for metric, by_unit in scores.items()
            }
            result["human_score"] = "counting: %best - %worst (pairwise: %preferred - %not preferred)"
        # The per-item arrays are the report's scatter data; on the command line they are only noise.
        result.pop("units", None)
        result.pop("human_means", None)
        result = jsonable(result)
        if opts["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(self._text(result))

    def _text(self, r: dict[str, Any]) -> str:
        rel = r["reliability"]
        icc = rel["icc"]
        lines = [r["headline"], "",
                 f"items: {r['items']} ({r['ratings']} ratings); reliability of the mean rating: split-half "
                 f"Spearman-Brown {M._f(rel['split_half_sb'])}, {icc['model']} {M._f(icc['average'])}"
                 + (f" [{M._f(icc['ci_low'])}, {M._f(icc['ci_high'])}]" if icc["ci_low"] is not None else "")
                 + (f" ({icc['reason']})" if icc["reason"] else ""),
                 f"ceiling sqrt(R): {M._f(r['ceiling'])}" if r["ceiling"] is not None else r["ceiling_detail"]["reason"],
                 "", f"{'metric':<28} {'method':<9} {'r':>7}  {'CI':<18} {'p':>9}  disattenuated"]
        for name, m in r["metrics"].items():
            for method in M.METHODS:
                c = m[method]
                ci = f"[{M._f(c['ci'][0])}, {M._f(c['ci'][1])}]" if c["ci"] else c["reason"][:18]
                dis = M._f(m.get("disattenuated", {}).get(method)) if method != "kendall" else ""
                p = f"{c['p']:.3g}" if c["p"] is not None else "—"
                lines.append(f"{name:<28} {method:<9} {M._f(c['r']):>7}  {ci:<18} {p:>9}  {dis}")
        if r["comparisons"]:
            lines += ["", "comparisons (Holm-corrected over all rows):"]
            for c in r["comparisons"]:
                ci = f"[{M._f(c['ci'][0])}, {M._f(c['ci'][1])}]" if c["ci"] else ""
                lines.append(f"  {c['a']} vs {c['b']} ({c['method']}): Δ = {M._f(c['delta'])} {ci}, p {M._p(c['p'])}, "
                             f"Holm p {M._p(c['p_holm'])} ({c['test']})")
        if "system_level" in r:
            s = r["system_level"]
            lines += ["", f"system level ({len(s['systems'])} systems):" + (f" {s['reason']}" if s.get("reason") else "")]
            for name, m in s["metrics"].items():
                extra = "".join(f", {k} {M._f(m[k]['r'])}" for k in ("pearson", "kendall") if k in m)
                lines.append(f"  {name}: pairwise accuracy {M._f(m['pairwise_accuracy'])}{extra}")
        if "grouped" in r:
            g = r["grouped"]
            lines += ["", f"within group ({g['groups']} groups; {g['method_note']}):"]
            for name, m in g["metrics"].items():
                ci = f" [{M._f(m['ci'][0])}, {M._f(m['ci'][1])}]" if m["ci"] else f" ({m.get('reason', '')})"
                lines.append(f"  {name}: mean tau {M._f(m['tau'])}{ci}, {m['groups_used']} used, "
                             f"{m['groups_skipped']} skipped")
        for note in r["notes"]:
            lines.append(f"note: {note}")
        lines.append(f"intervals: {r['params']['interval_method']}; {r['params']['resamples']} resamples, "
                     f"seed {r['params']['seed']}")
        if "choice_agreement" in r:
            lines += ["", f"human score: {r['human_score']}", "agreement with the raw choices (share of decided pairs "
                      "the metric orders as the annotator did):"]
            for name, g in r["choice_agreement"].items():
                ci = f" [{M._f(g['ci_low'])}, {M._f(g['ci_high'])}]" if g["ci_low"] is not None else ""
                lines.append(f"  {name}: {M._f(g['agreement'])}{ci} over {g['pairs']} pairs" + (
                    f" ({g['reason']})" if g["reason"] else ""))
        return "\n".join(lines)
