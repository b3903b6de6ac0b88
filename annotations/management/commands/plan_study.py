"""How many items and ratings a study needs to detect a correlation, and what they cost."""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.planning import PlanInputError, plan_lines, study_plan_compute


class Command(BaseCommand):
    help = ("Plan a study: items needed to detect a correlation (Fisher z), the reliability k raters give "
            "(Spearman-Brown from a pilot), and the expected crowd cost.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rho", type=float, required=True,
                            help="Correlation to detect between a metric and the human score (e.g. 0.3).")
        parser.add_argument("--power", type=float, required=True, help="Wanted power, e.g. 0.8.")
        parser.add_argument("--alpha", type=float, default=0.05, help="Two-sided significance level (default 0.05).")
        parser.add_argument("--raters", type=int, default=3, help="Raters per item, k (default 3).")
        parser.add_argument("--reliability", type=float, default=None,
                            help="Pilot reliability of the mean of --pilot-raters raters (e.g. ICC or split-half).")
        parser.add_argument("--pilot-raters", type=int, default=1,
                            help="How many raters the pilot reliability refers to (default 1: a single rater).")
        parser.add_argument("--seconds-per-item", type=float, default=None,
                            help="Median seconds a rater spends on one item.")
        parser.add_argument("--pay-per-hour", type=float, default=None, help="Hourly pay per rater.")
        parser.add_argument("--currency", default="", help="Currency label for the cost (e.g. GBP).")
        parser.add_argument("--json", action="store_true", help="Print one JSON object instead of text.")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["pay_per_hour"] is not None and opts["seconds_per_item"] is None:
            raise CommandError("--pay-per-hour needs --seconds-per-item to estimate the hours")
        try:
            plan = study_plan_compute(
                rho=opts["rho"], power=opts["power"], alpha=opts["alpha"], raters=opts["raters"],
                reliability=opts["reliability"], pilot_raters=opts["pilot_raters"],
                seconds_per_rating=opts["seconds_per_item"], pay_per_hour=opts["pay_per_hour"],
            )
        except PlanInputError as exc:
            raise CommandError(str(exc)) from None
        if opts["json"]:
            self.stdout.write(json.dumps(plan.as_dict()))
            return
        self.stdout.write("\n".join(plan_lines(plan, currency=opts["currency"])))
