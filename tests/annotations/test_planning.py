"""Study planning: Fisher-z sample sizes, Spearman-Brown projection, cost; the command and the manage page."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from annotations.models import Assignment
from annotations.planning import (
    PlanInputError,
    items_for_correlation,
    plan_lines,
    power_for_correlation,
    study_plan_compute,
)


def test_it_matches_cohens_table_for_the_items_a_correlation_needs() -> None:
    # Cohen (1988), Table 3.4.1, two-tailed a = .05, power .80: r = .10 -> 783, .30 -> 85, .50 -> 29 (Fisher z).
    assert items_for_correlation(rho=0.3, power=0.8) == 85
    assert items_for_correlation(rho=0.1, power=0.8) == 783
    assert items_for_correlation(rho=0.5, power=0.8) in (29, 30)
    n = items_for_correlation(rho=0.3, power=0.9)
    assert power_for_correlation(rho=0.3, items=n) >= 0.9 > power_for_correlation(rho=0.3, items=n - 1)


def test_it_projects_reliability_by_spearman_brown_and_attenuates_the_correlation() -> None:
    plan = study_plan_compute(rho=0.3, power=0.8, raters=3, reliability=0.4, seconds_per_rating=12, pay_per_hour=9)
    assert plan.reliability == pytest.approx(3 * 0.4 / (1 + 2 * 0.4))
    assert plan.observable_rho == pytest.approx(0.3 * math.sqrt(plan.reliability))
    assert plan.items_attenuated == items_for_correlation(rho=plan.observable_rho, power=0.8)
    assert plan.ratings == 85 * 3 and plan.hours == pytest.approx(255 * 12 / 3600)
    assert plan.cost == pytest.approx(plan.hours * 9)
    assert study_plan_compute(rho=0.3, reliability=-0.1).note.startswith("the pilot's reliability is not above 0")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rho": 0}, "rho must be"), ({"rho": 1.2}, "rho must be"), ({"rho": 0.3, "power": 1.5}, "power must be"),
    ({"rho": 0.3, "raters": 0}, "raters must be"), ({"rho": 0.3, "reliability": 1.0}, "reliability must be"),
    ({"rho": 0.3, "seconds_per_rating": -3}, "seconds per item"),
    ({"rho": 1e-300}, "too close to 0"), ({"rho": 0.3, "seconds_per_rating": math.nan}, "seconds per item"),
    ({"rho": 0.3, "seconds_per_rating": math.inf}, "seconds per item"),
    ({"rho": 0.3, "seconds_per_rating": 10, "pay_per_hour": math.nan}, "pay per hour"),
])
def test_it_rejects_inputs_outside_their_domain(kwargs: dict, message: str) -> None:
    with pytest.raises(PlanInputError, match=message):
        study_plan_compute(**kwargs)


def test_it_says_when_a_pilot_reliability_barely_above_0_makes_any_study_too_small() -> None:
    plan = study_plan_compute(rho=0.3, reliability=1e-20)
    assert plan.items == 85 and plan.items_attenuated is None and plan.ratings_attenuated is None
    assert "no feasible number of items" in plan.note
    assert plan_lines(plan)[1].endswith("against that mean.")


def test_it_plans_from_the_command_line(capsys) -> None:
    call_command("plan_study", "--rho", "0.3", "--power", "0.8", "--raters", "3", "--reliability", "0.4",
                 "--seconds-per-item", "12", "--pay-per-hour", "9", "--currency", "GBP")
    out = capsys.readouterr().out
    assert "85 items × 3 raters = 255 ratings, about 0.8 h of rating, cost 7.65 GBP." in out
    assert "Reliability of the 3-rater mean: 0.67 (Spearman–Brown from 0.40 with 1 rater)" in out
    call_command("plan_study", "--rho", "0.5", "--power", "0.8", "--json")
    assert json.loads(capsys.readouterr().out)["items"] == items_for_correlation(rho=0.5, power=0.8)


@pytest.mark.parametrize(("args", "message"), [
    (["--rho", "0", "--power", "0.8"], "rho must be"),
    (["--rho", "0.3", "--power", "2"], "power must be"),
    (["--rho", "0.3", "--power", "0.8", "--pay-per-hour", "9"], "--pay-per-hour needs --seconds-per-item"),
    (["--rho", "1e-300", "--power", "0.8"], "too close to 0"),
    (["--rho", "0.3", "--power", "0.8", "--seconds-per-item", "inf", "--pay-per-hour", "9"], "seconds per item"),
])
def test_it_answers_bad_command_arguments_with_a_clear_error(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("plan_study", *args)


@pytest.mark.django_db
def test_it_shows_the_plan_on_the_manage_page_once_a_pilot_has_ratings(study, crowd, researcher) -> None:
    client = Client()
    client.force_login(researcher)
    page = client.get(f"/studies/{study.slug}/manage/").content.decode()
    assert "Planning numbers appear once a pilot has ratings (no ratings yet: run a pilot first)" in page
    study.pay_per_hour = 12
    study.save()
    rng = np.random.default_rng(1)
    for worker in ("p1", "p2"):
        rater = crowd(study, worker)
        while "/a/" in (location := rater.get(f"/s/{study.slug}/")["Location"]):
            token = re.search(r"/a/([0-9a-f-]+)/", location).group(1)
            item = Assignment.objects.get(token=token).item
            value = int(np.clip(1 + item.pk % 5 + rng.integers(0, 2), 1, 5))
            rater.post(location, {"value": value, "comment": ""})
    page = client.get(f"/studies/{study.slug}/manage/").content.decode()
    assert 'id="plan"' in page and "Pilot: 12 ratings on 6 items" in page
    assert "To detect ρ = 0.3 with 80% power (two-sided α = 0.05): 85 items × 2 raters = 170 ratings" in page
    assert "Reliability of the 2-rater mean:" in page
