"""Build the next report version of a study and optionally write its files."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations import agreement as A
from annotations.exports import RATING_COLUMNS, csv_render, report_body, study_item_rows, study_ratings_rows
from annotations.models import Study
from annotations.reports import ReportError, formats_parse, study_report_build


class Command(BaseCommand):
    help = "Compute agreement, correlations and per-model means for a study; store them as a new Report version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("study", help="Study slug.")
        parser.add_argument("--format", default="html,csv,json",
                            help="Comma-separated subset of html,csv,json (default all). csv also writes the "
                                 "ratings and per-item exports.")
        parser.add_argument("--out", type=Path, default=None,
                            help="Folder to write the files into (created if missing); without it only the "
                                 "Report row is stored.")
        parser.add_argument("--resamples", type=int, default=1000, help="Bootstrap resamples (default 1000).")
        parser.add_argument("--alpha-min", type=float, default=0.667,
                            help="Smallest acceptable alpha for P(alpha < alpha-min) (default 0.667).")
        parser.add_argument("--seed", type=int, default=A.DEFAULT_SEED,
                            help=f"Bootstrap seed (default {A.DEFAULT_SEED}; recorded in the report).")
        parser.add_argument("--alpha-method", choices=A.ALPHA_BOOTSTRAP_METHODS, default="items",
                            help="Alpha's bootstrap: 'items' (default, whole items resampled) or 'hayes' "
                                 "(Hayes & Krippendorff 2007; too narrow, for comparison only).")

    def handle(self, *args: Any, **opts: Any) -> None:
        study = Study.objects.filter(slug=opts["study"]).first()
        if study is None:
            known = ", ".join(Study.objects.values_list("slug", flat=True)[:20]) or "none"
            raise CommandError(f"no study {opts['study']!r} (known: {known})")
        try:
            formats = formats_parse(opts["format"])
        except ReportError as exc:
            raise CommandError(str(exc)) from None
        out: Path | None = opts["out"]
        if out is not None:
            if out.exists() and not out.is_dir():
                raise CommandError(f"--out {out} exists and is not a folder")
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CommandError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
        try:
            report = study_report_build(study=study, formats=formats, resamples=opts["resamples"],
                                        alpha_min=opts["alpha_min"], seed=opts["seed"],
                                        alpha_method=opts["alpha_method"])
        except ReportError as exc:
            raise CommandError(str(exc)) from None
        written = self._write(out, study, report, formats) if out is not None else []
        alpha = report.results["analyses"]["included"]["alpha"]["ordinal"]
        summary = "undefined" if alpha["alpha"] is None else f"{alpha['alpha']:.3f}"
        self.stdout.write(f"study {study.slug}: report v{report.version}, ordinal alpha (without excluded) "
                          f"{summary}" + (f"; wrote {', '.join(str(p) for p in written)}" if written else ""))

    def _write(self, out: Path, study: Study, report: Any, formats: list[str]) -> list[Path]:
        base = f"{study.slug}-report-v{report.version}"
        files = {f"{base}.{fmt}": report_body(results=report.results, html=report.html, fmt=fmt) for fmt in formats}
        if "csv" in formats:
            files[f"{study.slug}-ratings.csv"] = csv_render(study_ratings_rows(study=study), RATING_COLUMNS)
            rows, columns = study_item_rows(study=study)
            files[f"{study.slug}-items.csv"] = csv_render(rows, columns)
        paths = []
        for name, body in files.items():
            (out / name).write_text(body, encoding="utf-8")
            paths.append(out / name)
        return paths
