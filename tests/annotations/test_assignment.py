"""Assignment (k distinct raters per item, per-annotator order, expiry) and rating submission."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from annotations.assignment import AnnotatorNotReady, assignment_current, assignment_next
from annotations.models import Annotator, Assignment, Item, Rating, Study
from annotations.services.annotators import annotator_join
from annotations.services.ratings import (
    AssignmentExpired,
    AssignmentNotFound,
    RatingInvalid,
    rating_submit,
)
from annotations.services.studies import study_check_items_add

pytestmark = pytest.mark.django_db


def rate_all(annotator: Annotator, value: int = 3) -> list[int]:
    """Rate until nothing is left; returns the item ids in the order they were given."""
    seen = []
    while (assignment := assignment_next(annotator=annotator)) is not None:
        seen.append(assignment.item_id)
        rating_submit(annotator=annotator, assignment_token=assignment.token, value=value)
    return seen


def test_it_gives_each_annotator_every_item_once_until_none_left(study, join_annotator) -> None:
    anna = join_annotator(study, "anna")
    seen = rate_all(anna)
    assert sorted(seen) == sorted(study.items.values_list("id", flat=True))
    assert Rating.objects.filter(annotator=anna).count() == 6
    assert assignment_next(annotator=anna) is None


def test_it_caps_each_normal_item_at_k_distinct_annotators(study, join_annotator) -> None:
    late = join_annotator(study, "c")  # joined while there was room, but comes back after a and b
    for name in ("a", "b"):
        rate_all(join_annotator(study, name))
    assert rate_all(late) == []
    counts = [item.ratings.count() for item in study.items.all()]
    assert counts == [2] * 6  # k = 2: the third annotator got nothing
    assert Rating.objects.filter(annotator__external_id="c").count() == 0


def test_it_returns_the_same_assignment_on_reload(study, join_annotator) -> None:
    anna = join_annotator(study, "anna")
    first = assignment_next(annotator=anna)
    again = assignment_next(annotator=anna)
    assert first.pk == again.pk
    assert Assignment.objects.filter(annotator=anna).count() == 1


def test_it_orders_items_by_a_stable_per_annotator_seed(make_generations, join_annotator) -> None:
    from annotations.services.studies import study_create

    make_generations(20)
    big = study_create(name="Order", dataset="faces", config_names=[], prompt_names=[], k=20, open_now=True)
    orders = [rate_all(join_annotator(big, f"w{i}")) for i in range(3)]
    assert len({tuple(order) for order in orders}) == 3  # three seeds, three orders (1 in 20! to collide)
    seeded = join_annotator(big, "w-same")
    Annotator.objects.filter(pk=seeded.pk).update(order_seed=Annotator.objects.get(external_id="w0").order_seed)
    seeded.refresh_from_db()
    assert rate_all(seeded) == orders[0]


def test_it_returns_expired_assignments_to_the_pool(study, join_annotator) -> None:
    Study.objects.filter(pk=study.pk).update(raters_per_item=1)
    anna, ben = join_annotator(study, "anna"), join_annotator(study, "ben")
    held = [assignment_next(annotator=anna)]
    Assignment.objects.filter(pk=held[0].pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    ben_items = rate_all(ben)
    assert held[0].item_id in ben_items
    assert assignment_current(annotator=anna) is None
    assert held[0].item_id not in rate_all(anna)  # k = 1 and ben holds the slot now
    assert Assignment.objects.get(pk=held[0].pk).status == Assignment.Status.EXPIRED


def test_it_revives_an_annotators_own_expired_assignment(study, join_annotator) -> None:
    anna = join_annotator(study, "anna")
    first = assignment_next(annotator=anna)
    Assignment.objects.filter(pk=first.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    seen = rate_all(anna)
    assert first.item_id in seen
    assert Assignment.objects.filter(annotator=anna, item_id=first.item_id).count() == 1


def test_it_gives_check_items_to_every_annotator_beyond_k(study, join_annotator) -> None:
    study_check_items_add(study=study, check_items=["Select 1 for this item.|1|1"])
    check = study.items.get(kind=Item.Kind.ATTENTION)
    annotators = [join_annotator(study, name) for name in ("a", "b", "c")]  # all in before the items fill
    for annotator in annotators:
        rate_all(annotator, value=1)
    assert check.ratings.count() == 3
    assert set(check.ratings.values_list("passed_check", flat=True)) == {True}


def test_it_does_not_count_excluded_annotators_against_k(study, join_annotator) -> None:
    Study.objects.filter(pk=study.pk).update(raters_per_item=1)
    anna = join_annotator(study, "anna")
    rate_all(anna)
    Annotator.objects.filter(pk=anna.pk).update(excluded=True)
    ben = join_annotator(study, "ben")
    assert len(rate_all(ben)) == 6


def test_it_refuses_to_assign_before_consent(study) -> None:
    annotator = annotator_join(study=study, platform="prolific", external_id="no-consent")
    with pytest.raises(AnnotatorNotReady):
        assignment_next(annotator=annotator)
    assert not Assignment.objects.exists()


def test_it_assigns_nothing_in_a_closed_study(study, join_annotator) -> None:
    anna = join_annotator(study, "anna")
    Study.objects.filter(pk=study.pk).update(status=Study.Status.CLOSED)
    assert assignment_next(annotator=anna) is None


def test_it_records_the_rating_the_time_and_submits_the_assignment(study, join_annotator) -> None:
    anna = join_annotator(study, "anna")
    assignment = assignment_next(annotator=anna)
    Assignment.objects.filter(pk=assignment.pk).update(shown_at=timezone.now() - timedelta(seconds=7))
    result = rating_submit(annotator=anna, assignment_token=str(assignment.token), value="4", comment=" ok ")
    assignment.refresh_from_db()
    rating = Rating.objects.get(assignment=assignment)
    assert result.created and assignment.status == Assignment.Status.SUBMITTED
    assert (rating.value, rating.comment, rating.passed_check) == (4, "ok", None)
    assert 6.5 < rating.seconds_on_item < 60


def test_it_treats_a_double_submit_as_a_no_op(study, join_annotator) -> None:
    anna = join_annotator(study, "anna")
    assignment = assignment_next(annotator=anna)
    rating_submit(annotator=anna, assignment_token=assignment.token, value=2)
    replay = rating_submit(annotator=anna, assignment_token=assignment.token, value=5)
    assert not replay.created
    assert list(Rating.objects.filter(annotator=anna).values_list("value", flat=True)) == [2]


@pytest.mark.parametrize("value", [0, 6, "x", "", None, "3.5"])
def test_it_rejects_a_value_outside_the_scale(study, join_annotator, value) -> None:
    anna = join_annotator(study, "anna")
    assignment = assignment_next(annotator=anna)
    with pytest.raises(RatingInvalid):
        rating_submit(annotator=anna, assignment_token=assignment.token, value=value)
    assignment.refresh_from_db()
    assert assignment.status == Assignment.Status.ACTIVE and not Rating.objects.exists()


@pytest.mark.parametrize("token", [uuid.uuid4(), "not-a-uuid", None])
def test_it_rejects_a_forged_assignment_id(study, join_annotator, token) -> None:
    anna = join_annotator(study, "anna")
    assignment_next(annotator=anna)
    with pytest.raises(AssignmentNotFound):
        rating_submit(annotator=anna, assignment_token=token, value=3)
    assert not Rating.objects.exists()


def test_it_rejects_someone_elses_assignment(study, join_annotator) -> None:
    anna, ben = join_annotator(study, "anna"), join_annotator(study, "ben")
    bens = assignment_next(annotator=ben)
    with pytest.raises(AssignmentNotFound):
        rating_submit(annotator=anna, assignment_token=bens.token, value=3)
    bens.refresh_from_db()
    assert bens.status == Assignment.Status.ACTIVE and not Rating.objects.exists()


def test_it_refuses_a_late_submit_when_the_slot_went_to_someone_else(study, join_annotator) -> None:
    Study.objects.filter(pk=study.pk).update(raters_per_item=1)
    anna, ben = join_annotator(study, "anna"), join_annotator(study, "ben")
    late = assignment_next(annotator=anna)
    Assignment.objects.filter(pk=late.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    rate_all(ben)
    with pytest.raises(AssignmentExpired):
        rating_submit(annotator=anna, assignment_token=late.token, value=3)
    assert not Rating.objects.filter(annotator=anna).exists()
    assert Rating.objects.filter(item_id=late.item_id).count() == 1


def test_it_keeps_a_late_submit_when_the_item_still_has_a_free_slot(study, join_annotator) -> None:
    anna = join_annotator(study, "anna")
    late = assignment_next(annotator=anna)
    Assignment.objects.filter(pk=late.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    result = rating_submit(annotator=anna, assignment_token=late.token, value=3)
    late.refresh_from_db()
    assert result.created and late.status == Assignment.Status.SUBMITTED


def _study_with_check(study: Study, **fields: object) -> Item:
    Study.objects.filter(pk=study.pk).update(**fields)
    study.refresh_from_db()
    study_check_items_add(study=study, check_items=["Attention: choose 5 here.|5|5"])
    return study.items.get(kind=Item.Kind.ATTENTION)


def _rate_until_check(annotator: Annotator, check: Item, value: int) -> object:
    while (assignment := assignment_next(annotator=annotator)) is not None:
        result = rating_submit(
            annotator=annotator, assignment_token=assignment.token,
            value=value if assignment.item_id == check.id else 3,
        )
        if assignment.item_id == check.id:
            return result
    raise AssertionError("the check item was never assigned")


def test_it_counts_a_failed_check_and_excludes_past_the_allowance(study, join_annotator) -> None:
    check = _study_with_check(study, failed_check_action="warn", max_failed_checks=0)
    anna = join_annotator(study, "anna")
    result = _rate_until_check(anna, check, value=1)
    anna.refresh_from_db()
    assert result.check_failed and not result.session_ended
    assert Rating.objects.get(item=check, annotator=anna).passed_check is False
    assert anna.failed_checks == 1 and anna.excluded and "failed 1 check" in anna.exclusion_reason
    assert anna.completed_at is None  # "warn" lets them finish


def test_it_passes_a_check_answered_within_range(study, join_annotator) -> None:
    check = _study_with_check(study, failed_check_action="end")
    anna = join_annotator(study, "anna")
    result = _rate_until_check(anna, check, value=5)
    anna.refresh_from_db()
    assert not result.check_failed and anna.failed_checks == 0 and not anna.excluded


def test_it_ends_the_session_on_a_failed_check_when_the_study_says_end(study, join_annotator) -> None:
    check = _study_with_check(study, failed_check_action="end", max_failed_checks=3)
    anna = join_annotator(study, "anna")
    result = _rate_until_check(anna, check, value=2)
    anna.refresh_from_db()
    assert result.session_ended and anna.excluded and anna.completed_at is not None
    assert assignment_next(annotator=anna) is None


def test_it_excludes_annotators_whose_median_time_is_below_the_floor(study, join_annotator) -> None:
    Study.objects.filter(pk=study.pk).update(min_median_seconds=2.0)
    anna = join_annotator(study, "anna")
    rate_all(anna)  # answers in milliseconds
    anna.refresh_from_db()
    assert anna.excluded and "below the 2 s floor" in anna.exclusion_reason


def test_it_lists_the_current_assignment_only_while_it_is_live(study, join_annotator) -> None:
    anna = join_annotator(study, "anna")
    assignment = assignment_next(annotator=anna)
    assert assignment_current(annotator=anna).pk == assignment.pk
    Assignment.objects.filter(pk=assignment.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert assignment_current(annotator=anna) is None


def test_it_claims_in_the_seeded_order_the_exact_path_uses(make_generations, join_annotator) -> None:
    from annotations.assignment import candidate_item_ids
    from annotations.services.studies import study_create

    make_generations(20)
    big = study_create(name="Same order", dataset="faces", config_names=[], prompt_names=[], k=20, open_now=True)
    anna = join_annotator(big, "anna")
    expected = candidate_item_ids(annotator=anna, study=big)
    assert rate_all(anna) == expected  # the PostgreSQL claim's SQL order is the Python order



def test_it_counts_what_is_left_for_the_progress_bar_alike_in_sql_and_in_the_orm(study, join_annotator) -> None:
    from annotations.assignment import annotator_remaining_count, remaining_checks_and_normal

    study_check_items_add(study=study, check_items=["Attention: choose 5 here.|5|5"])
    n1, n2, n3, n4, n5, n6 = study.items.filter(kind=Item.Kind.NORMAL).order_by("id")
    check = study.items.get(kind=Item.Kind.ATTENTION)
    anna, ben, cara, dan = (join_annotator(study, name) for name in ("anna", "ben", "cara", "dan"))
    Annotator.objects.filter(pk=dan.pk).update(excluded=True)
    later, earlier = timezone.now() + timedelta(minutes=30), timezone.now() - timedelta(seconds=1)
    for item, annotator, status, expires in [
        (n1, ben, "submitted", later), (n1, cara, "submitted", later),  # full (k = 2)
        (n2, ben, "active", later), (n2, dan, "submitted", later),  # one live slot: dan is excluded
        (n3, cara, "active", earlier),  # abandoned: no live slot
        (n4, anna, "submitted", later), (n5, anna, "active", later),  # anna's own
        (n6, anna, "expired", earlier),  # anna's expired claim: open to her again
        (check, ben, "submitted", later),
    ]:
        Assignment.objects.create(item=item, annotator=annotator, status=status, expires_at=expires)
    Rating.objects.create(assignment=Assignment.objects.get(item=n4, annotator=anna), item=n4, annotator=anna, value=3)
    assert remaining_checks_and_normal(annotator=anna) == remaining_checks_and_normal(annotator=anna, orm=True) == (1, 3)
    assert annotator_remaining_count(annotator=anna) == 4  # n2, n3, n6 and the check
    Study.objects.filter(pk=study.pk).update(items_per_participant=2)
    anna = Annotator.objects.select_related("study").get(pk=anna.pk)
    assert annotator_remaining_count(annotator=anna) == 1  # one normal item left in the budget: the one in hand
