"""Krippendorff's alpha for any long-format CSV (unit,rater,value), from this platform or elsewhere."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations import agreement as A
from annotations.csvinput import csv_input_open

REQUIRED_COLUMNS = ("unit", "rater", "value")


def ratings_csv_read(path: Path, *, level: str) -> tuple[list[str], list[str], list[Any], int]:
    """Units, raters and values from the CSV; blank values are missing ratings (counted, skipped)."""
    reader, header = csv_input_open(path, empty_hint="a header unit,rater,value and one row per rating")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise CommandError(f"{path}: missing column(s) {', '.join(missing)}; the header is {reader.fieldnames!r}")
    reader.fieldnames = header
    units: list[str] = []
    raters: list[str] = []
    values: list[Any] = []
    seen: dict[tuple[str, str], int] = {}
    blanks = 0
    for row in reader:
        line = reader.line_num  # the row's last physical line (a quoted cell may span lines)
        unit, rater, raw = (str(row.get(c) or "").strip() for c in REQUIRED_COLUMNS)
        if not unit or not rater:
            raise CommandError(f"{path}:{line}: empty unit or rater")
        if raw == "":
            blanks += 1
            continue
        key = (unit, rater)
        if key in seen:
            raise CommandError(
                f"{path}:{line}: rater {rater!r} rated unit {unit!r} twice (first on line {seen[key]})"
            )
        seen[key] = line
        if level == "nominal":
            values.append(raw)
        else:
            try:
                number = float(raw)
            except ValueError:
                raise CommandError(f"{path}:{line}: value {raw!r} is not a number ({level} level)") from None
            if not math.isfinite(number):
                raise CommandError(f"{path}:{line}: value {raw!r} is not a finite number")
            values.append(number)
        units.append(unit)
        raters.append(rater)
    if not values:
        raise CommandError(f"{path}: no ratings (only a header, or only blank values)")
    if level == "nominal":
        values = nominal_values_normalise(values)
    return units, raters, values, blanks


def nominal_values_normalise(values: list[Any]) -> list[Any]:
    """Nominal categories written as numbers compare as numbers, so "1" and "1.0" are one category.

    Only when every value is a finite number; a column mixing words and numbers stays text.
    """
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        return values
    if not all(math.isfinite(x) for x in numbers):
        return values
    return [int(x) if x.is_integer() else x for x in numbers]


def domain_parse(raw: str | None, *, values: list[Any], level: str) -> list[Any]:
    if raw is None:
        # Numeric levels order numerically; nominal order does not matter to alpha.
        return sorted(set(values))
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts:  # was an IndexError deep in the counting
        raise CommandError(f"--domain lists no values: {raw!r}")
    if level == "nominal":
        # The same rule as the data, so "--domain 1,2" matches values written "1.0", "2".
        return nominal_values_normalise(parts)
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) != len(parts) or not all(math.isfinite(x) for x in numbers):
        raise CommandError(f"--domain must list numbers at the {level} level, got {raw!r}")
    return numbers


class Command(BaseCommand):
    help = "Krippendorff's alpha (and optionally its bootstrap CI) for a long-format CSV with columns unit,rater,value."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="CSV with a header containing unit,rater,value (other columns ignored).")
        parser.add_argument("--level", required=True, choices=A.LEVELS,
                            help="Level of measurement; always explicit, since it changes alpha.")
        parser.add_argument("--domain", default=None,
                            help="Ordered value domain, comma-separated (default: the sorted distinct values).")
        parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                            help="Bootstrap resamples for the CI and P(alpha < alpha-min); 0 = none.")
        parser.add_argument("--method", choices=A.ALPHA_BOOTSTRAP_METHODS, default="items",
                            help="Bootstrap method: 'items' (default) resamples whole units with all their ratings; "
                                 "'hayes' is Hayes & Krippendorff (2007), which treats pairs inside a unit as "
                                 "independent and gives intervals that are too narrow (kept for comparison).")
        parser.add_argument("--alpha-min", type=float, default=0.667,
                            help="Smallest acceptable alpha; reports P(alpha < alpha-min). Default 0.667.")
        parser.add_argument("--confidence", type=float, default=0.95, help="CI level, default 0.95.")
        parser.add_argument("--seed", type=int, default=A.DEFAULT_SEED,
                            help=f"Bootstrap seed (default {A.DEFAULT_SEED}, so two runs agree).")
        parser.add_argument("--json", action="store_true", help="Print one JSON object instead of text.")

    def handle(self, *args: Any, **opts: Any) -> None:
        level = opts["level"]
        if opts["bootstrap"] < 0:
            raise CommandError("--bootstrap must be 0 or more")
        units, raters, values, blanks = ratings_csv_read(opts["file"], level=level)
        domain = domain_parse(opts["domain"], values=values, level=level)
        try:
            counts = A.value_counts_from_long(units=units, values=values, domain=domain)
            result = A.alpha_compute(value_counts=counts, domain=domain, level=level)
            boot = None
            if opts["bootstrap"]:
                boot = A.alpha_bootstrap(
                    value_counts=counts, domain=domain, level=level, resamples=opts["bootstrap"],
                    alpha_min=opts["alpha_min"], confidence=opts["confidence"], seed=opts["seed"],
                    method=opts["method"],
                )
        except A.AgreementInputError as exc:
            raise CommandError(f"{opts['file']}: {exc}") from None
        summary = {
            **result.as_dict(), "pairable_units": result.units, "file": str(opts["file"]), "domain": domain,
            "ratings": len(values), "blank_values_skipped": blanks, "units": len(set(units)),
            "raters": len(set(raters)), "bootstrap": boot.as_dict() if boot else None,
        }
        if opts["json"]:
            self.stdout.write(json.dumps(summary))
            return
        self.stdout.write(self._text(summary, result, boot))

    def _text(self, summary: dict[str, Any], result: A.AlphaResult, boot: A.BootstrapResult | None) -> str:
        size = (f"{summary['ratings']} ratings, {summary['units']} units ({result.units} pairable), "
                f"{summary['raters']} raters" + (f", {summary['blank_values_skipped']} blank skipped"
                                                   if summary["blank_values_skipped"] else ""))
        if not result.defined:
            return f"alpha ({result.level}) undefined: {result.reason} [{size}]"
        lines = [f"alpha ({result.level}) = {result.alpha:.4f} [{size}]"]
        if boot is not None and boot.ci_low is None:
            lines.append(f"no confidence interval: {boot.reason}")
        elif boot is not None:
            drawn = f"{boot.draws} pairs" if boot.method == "hayes" else f"{boot.draws} units"
            dropped = (f"; {boot.undefined_resamples} resamples without variation left out"
                       if boot.undefined_resamples else "")
            lines.append(
                f"{boot.confidence:.0%} CI [{boot.ci_low:.4f}, {boot.ci_high:.4f}], "
                f"P(alpha < {boot.alpha_min}) = {boot.p_below_min:.4f} "
                f"({boot.resamples} resamples of {drawn}, method {boot.method}, seed {boot.seed}{dropped})"
            )
            lines.append(f"method: {boot.method_note}")
        return "\n".join(lines)
