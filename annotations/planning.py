"""Study planning: how many items and ratings a study needs, and what they cost. Pure functions.

* Items to detect a correlation rho with power 1 - beta at two-sided level a: Fisher's z gives
  n = ((z_{1-a/2} + z_{1-beta}) / atanh(rho))^2 + 3 (Cohen 1988, ch. 3; the usual normal
  approximation, accurate to an item or two against the exact distribution for n >= 10).
* A metric is compared with the MEAN of k ratings, whose reliability R_k follows from a pilot's
  reliability R_m of m raters by Spearman-Brown: R_k = c R_m / (1 + (c - 1) R_m), c = k / m. The
  correlation one can observe is attenuated to rho * sqrt(R_k) when rho is the metric's correlation
  with the error-free human score, so the plan also gives the items needed for that case.
* Cost: items x k ratings x seconds per rating, paid per hour.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats

from annotations.reliability import spearman_brown


class PlanInputError(ValueError):
    """A planning input is outside its domain."""


MAX_ITEMS = 10**9


def items_for_correlation(*, rho: float, power: float = 0.8, alpha: float = 0.05) -> int:
    """Smallest number of items that detects a population correlation rho (two-sided test)."""
    if not 0 < abs(rho) < 1:
        raise PlanInputError(f"rho must be between -1 and 1 and not 0 (got {rho})")
    if not 0 < power < 1:
        raise PlanInputError(f"power must be between 0 and 1 (got {power})")
    if not 0 < alpha < 1:
        raise PlanInputError(f"alpha must be between 0 and 1 (got {alpha})")
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    root = float(z) / math.atanh(abs(rho))
    if not abs(root) < math.sqrt(MAX_ITEMS):  # a rho like 1e-300 needs infinitely many: no plan, not a crash
        raise PlanInputError(f"rho {rho:g} is too close to 0: it would need more than {MAX_ITEMS:,} items")
    return int(math.ceil(root ** 2 + 3))


def power_for_correlation(*, rho: float, items: int, alpha: float = 0.05) -> float:
    """Power of the two-sided test of a correlation rho over `items` items (Fisher z)."""
    if items <= 3:
        return 0.0
    shift = math.atanh(abs(rho)) * math.sqrt(items - 3)
    crit = stats.norm.ppf(1 - alpha / 2)
    return float(stats.norm.sf(crit - shift) + stats.norm.cdf(-crit - shift))


@dataclass
class StudyPlan:
    rho: float
    power: float
    alpha: float
    raters: int
    items: int  # to detect rho as the correlation with the observed mean rating
    ratings: int
    reliability: float | None = None  # R_k of the k-rater mean, projected from the pilot
    pilot_reliability: float | None = None
    pilot_raters: int | None = None
    observable_rho: float | None = None  # rho * sqrt(R_k): what a metric with corr(metric, truth) = rho shows
    items_attenuated: int | None = None  # items to detect that attenuated correlation
    ratings_attenuated: int | None = None
    seconds_per_rating: float | None = None
    pay_per_hour: float | None = None
    hours: float | None = None
    cost: float | None = None
    hours_attenuated: float | None = None
    cost_attenuated: float | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def study_plan_compute(
    *,
    rho: float,
    power: float = 0.8,
    alpha: float = 0.05,
    raters: int = 3,
    reliability: float | None = None,
    pilot_raters: int = 1,
    seconds_per_rating: float | None = None,
    pay_per_hour: float | None = None,
) -> StudyPlan:
    if raters < 1:
        raise PlanInputError(f"raters must be at least 1 (got {raters})")
    if pilot_raters < 1:
        raise PlanInputError(f"pilot raters must be at least 1 (got {pilot_raters})")
    if reliability is not None and not -1 < reliability < 1:
        raise PlanInputError(f"reliability must be between -1 and 1 (got {reliability}); 1 means no noise at all")
    if seconds_per_rating is not None and not 0 < seconds_per_rating < math.inf:  # also refuses NaN
        raise PlanInputError("seconds per item must be a positive number")
    if pay_per_hour is not None and not 0 <= pay_per_hour < math.inf:
        raise PlanInputError("pay per hour must be a number, not negative")
    items = items_for_correlation(rho=rho, power=power, alpha=alpha)
    plan = StudyPlan(rho=rho, power=power, alpha=alpha, raters=raters, items=items, ratings=items * raters,
                     seconds_per_rating=seconds_per_rating, pay_per_hour=pay_per_hour)
    if reliability is not None:
        plan.pilot_reliability, plan.pilot_raters = reliability, pilot_raters
        if reliability <= 0:
            plan.note = ("the pilot's reliability is not above 0: more raters cannot make the mean reliable; "
                         "revise the question or the scale first")
        else:
            r_k = spearman_brown(reliability=reliability, factor=raters / pilot_raters)
            plan.reliability = r_k
            plan.observable_rho = rho * math.sqrt(r_k)
            try:
                plan.items_attenuated = items_for_correlation(rho=plan.observable_rho, power=power, alpha=alpha)
            except PlanInputError:  # a pilot reliability barely above 0
                plan.note = ("at the pilot's reliability no feasible number of items detects the metric's correlation; "
                             "revise the question or the scale first")
            else:
                plan.ratings_attenuated = plan.items_attenuated * raters
    if seconds_per_rating is not None:
        plan.hours = plan.ratings * seconds_per_rating / 3600
        if plan.ratings_attenuated is not None:
            plan.hours_attenuated = plan.ratings_attenuated * seconds_per_rating / 3600
        if pay_per_hour is not None:
            plan.cost = plan.hours * pay_per_hour
            if plan.hours_attenuated is not None:
                plan.cost_attenuated = plan.hours_attenuated * pay_per_hour
    return plan


def plan_lines(plan: StudyPlan, *, currency: str = "") -> list[str]:
    """The plan in plain words (the command's output and the manage page's panel)."""
    def money(x: float) -> str:
        return f"{x:,.2f}{(' ' + currency) if currency else ''}"

    lines = [f"To detect ρ = {plan.rho:g} with {plan.power:.0%} power (two-sided α = {plan.alpha:g}): "
             f"{plan.items} items × {plan.raters} raters = {plan.ratings} ratings"
             + (f", about {plan.hours:.1f} h of rating" if plan.hours is not None else "")
             + (f", cost {money(plan.cost)}" if plan.cost is not None else "") + "."]
    if plan.reliability is not None:
        lines.append(
            f"Reliability of the {plan.raters}-rater mean: {plan.reliability:.2f} (Spearman–Brown from "
            f"{plan.pilot_reliability:.2f} with {plan.pilot_raters} rater{'s' if plan.pilot_raters != 1 else ''}); "
            f"a metric with ρ = {plan.rho:g} against the error-free score shows ρ = {plan.observable_rho:.2f} "
            f"against that mean"
            + (f", which needs {plan.items_attenuated} items ({plan.ratings_attenuated} ratings"
               + (f", about {plan.hours_attenuated:.1f} h" if plan.hours_attenuated is not None else "")
               + (f", cost {money(plan.cost_attenuated)}" if plan.cost_attenuated is not None else "") + ")"
               if plan.items_attenuated is not None else "") + ".")
    if plan.note:
        lines.append(f"Note: {plan.note}.")
    return lines
