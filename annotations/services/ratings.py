"""Submitting a rating: final once stored, idempotent on replay, checks and exclusion rules applied."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.db.models import F
from django.db.models.sql import InsertQuery
from django.utils import timezone

from evalplatform.db import prepared_cursor

from ..assignment import item_slot_free_locked
from ..models import Annotator, Assignment, Item, Rating, Study, UnitOption
from ..selectors import annotator_median_seconds
from .units import unit_display_order

MAX_COMMENT_CHARS = 2000
SPEED_RULE_MIN_RATINGS = 3  # a median of one or two answers says little about speeding


class RatingError(Exception):
    """Base of the errors a submit can raise; each maps to one HTTP status in the views."""


class AssignmentNotFound(RatingError):
    """No assignment with this id belongs to this annotator (forged, someone else's, or malformed)."""


class AssignmentExpired(RatingError):
    """The assignment ran out of time and its slot went to another annotator."""


class RatingInvalid(RatingError):
    """The value is not a point of the study's scale, or the comment is too long."""


@dataclass(frozen=True)
class SubmitResult:
    rating: Rating
    created: bool  # False: a replay of an already submitted assignment (nothing changed)
    check_failed: bool = False
    session_ended: bool = False


def rating_value_parse(*, study: Study, raw: object) -> int:
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError) as exc:
        raise RatingInvalid(f"choose a rating from {study.scale_min} to {study.scale_max}") from exc
    if not study.scale_min <= value <= study.scale_max:
        raise RatingInvalid(f"{value} is outside the scale {study.scale_min} to {study.scale_max}")
    return value


@dataclass(frozen=True)
class Answer:
    """What one submit stores: a Likert value, or a comparative choice (best/worst; both None = tie)."""

    value: int | None = None
    best: UnitOption | None = None
    worst: UnitOption | None = None
    shown_order: list[int] | None = None
    passed: bool | None = None


def _option_pick(options: dict[str, UnitOption], raw: object, what: str) -> UnitOption:
    option = options.get(str(raw if raw is not None else "").strip())
    if option is None:
        raise RatingInvalid(f"choose the {what}")
    return option


def choice_parse(*, study: Study, item: Item, best: object, worst: object, seed: int) -> Answer:
    """Check a best–worst or pairwise answer against the unit's own descriptions; grade a check unit."""
    options = list(item.options.all())
    shown = [option.pk for option in unit_display_order(seed=seed, item_id=item.pk, options=options)]
    by_id = {str(option.pk): option for option in options}
    if study.kind == Study.Kind.PAIRWISE:
        if str(best).strip() == "tie":
            if not study.allow_ties:
                raise RatingInvalid("this study asks you to choose one of the two descriptions")
            return Answer(shown_order=shown, passed=_graded(item, options, None, None))
        chosen = _option_pick(by_id, best, "description that matches better")
        other = next(option for option in options if option.pk != chosen.pk)
        return Answer(best=chosen, worst=other, shown_order=shown, passed=_graded(item, options, chosen, other))
    chosen_best = _option_pick(by_id, best, "best match")
    chosen_worst = _option_pick(by_id, worst, "worst match")
    if chosen_best.pk == chosen_worst.pk:
        raise RatingInvalid("the best and the worst match must be different descriptions")
    return Answer(best=chosen_best, worst=chosen_worst, shown_order=shown,
                  passed=_graded(item, options, chosen_best, chosen_worst))


def _graded(item: Item, options: list[UnitOption], best: UnitOption | None, worst: UnitOption | None) -> bool | None:
    if item.kind == Item.Kind.NORMAL:
        return None
    known_best = next((o for o in options if o.expected == UnitOption.Expected.BEST), None)
    known_worst = next((o for o in options if o.expected == UnitOption.Expected.WORST), None)
    if known_best is None:
        return None
    if len(options) == 2:
        return best is not None and best.pk == known_best.pk
    return best is not None and best.pk == known_best.pk and (known_worst is None or worst.pk == known_worst.pk)


def _token_parse(token: object) -> uuid.UUID:
    try:
        return uuid.UUID(str(token))
    except (TypeError, ValueError) as exc:
        raise AssignmentNotFound("no such assignment") from exc


def annotator_exclusion_apply(
    *, annotator: Annotator, study: Study, check_failed: bool, now: datetime, counted: bool = False
) -> bool:
    """Count a failed check (unless the caller's write already did: `counted`), apply the study's exclusion
    rules; return True when the session must end."""
    if not check_failed and study.min_median_seconds <= 0:
        return False  # no rule can newly apply; skip the reads on the hot path of every submit
    if check_failed and not counted:
        Annotator.objects.filter(pk=annotator.pk).update(failed_checks=F("failed_checks") + 1)
    annotator.refresh_from_db(fields=["failed_checks", "excluded", "exclusion_reason", "completed_at"])
    reasons = []
    end_session = check_failed and study.failed_check_action == Study.FailedCheckAction.END
    if end_session:
        reasons.append("failed an attention check (the study ends the session)")
    if annotator.failed_checks > study.max_failed_checks:
        reasons.append(f"failed {annotator.failed_checks} check(s), more than the {study.max_failed_checks} allowed")
    if study.min_median_seconds > 0:
        count, median = annotator_median_seconds(annotator=annotator)
        if count >= SPEED_RULE_MIN_RATINGS and median is not None and median < study.min_median_seconds:
            reasons.append(f"median {median:.1f} s per item, below the {study.min_median_seconds:g} s floor")
    if reasons and not annotator.excluded:
        Annotator.objects.filter(pk=annotator.pk).update(excluded=True, exclusion_reason="; ".join(reasons)[:300])
    if end_session:
        Annotator.objects.filter(pk=annotator.pk, completed_at__isnull=True).update(
            completed_at=now, outcome=Annotator.Outcome.ENDED
        )
    if reasons:
        # An excluded annotator's open claims return to the pool at once rather than at expiry.
        Assignment.objects.filter(annotator=annotator, status=Assignment.Status.ACTIVE).update(
            status=Assignment.Status.EXPIRED
        )
    annotator.refresh_from_db(fields=["failed_checks", "excluded", "exclusion_reason", "completed_at"])
    return end_session


def _rating_store(*, rating: Rating, assignment: Assignment, now: datetime) -> None:
    """Insert the rating and mark its assignment submitted: one statement on PostgreSQL, two elsewhere."""
    if connection.vendor != "postgresql":  # SQLite has no data-modifying WITH
        rating.save(force_insert=True)
        Assignment.objects.filter(pk=assignment.pk).update(status=Assignment.Status.SUBMITTED, submitted_at=now)
        return
    # Django compiles the INSERT (field preparation, auto_now_add); the UPDATE rides along in a WITH.
    fields = [field for field in Rating._meta.local_concrete_fields if not field.primary_key]
    query = InsertQuery(Rating)
    query.insert_values(fields, [rating])
    [(insert_sql, insert_params)] = query.get_compiler(connection=connection).as_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH submitted AS (UPDATE annotations_assignment SET status = %s, submitted_at = %s WHERE id = %s) "
            f"{insert_sql} RETURNING id",
            [Assignment.Status.SUBMITTED.value, now, assignment.pk, *insert_params],
        )
        rating.pk = cursor.fetchone()[0]
    rating._state.adding = False
    rating._state.db = connection.alias


# The usual submit on PostgreSQL in one statement: a Likert value for a live assignment of one's own marks it
# submitted and inserts the rating, checked against the study and item rows as they are now (scale, check
# range, time on item) and, for a failed check, counts it on the annotator in the same statement. Anything
# else (a replay, a late, unknown or someone else's assignment, a value off the scale, a comparative study)
# changes no row and takes the exact path, which decides and explains. A double submit stays single: under
# READ COMMITTED the UPDATE waits for a concurrent submit of the same row and re-checks `status = 'active'`
# on the version that one committed, so the second changes nothing and the exact path answers it as a replay.
_FAST_SUBMIT_SQL = """
WITH submitted AS (
  UPDATE annotations_assignment m SET status = 'submitted', submitted_at = %(now)s
  FROM annotations_annotator a JOIN annotations_study s ON s.id = a.study_id
  WHERE m.token = %(token)s AND m.annotator_id = %(me)s AND a.id = m.annotator_id
    AND m.status = 'active' AND m.expires_at > %(now)s
    AND s.kind = 'likert' AND %(value)s BETWEEN s.scale_min AND s.scale_max
  RETURNING m.id, m.item_id, COALESCE(m.shown_at, m.created_at) AS started,
    s.min_median_seconds, s.max_failed_checks, s.failed_check_action
), rated AS (
  INSERT INTO annotations_rating (assignment_id, item_id, annotator_id, value, best_id, worst_id, shown_order,
    comment, seconds_on_item, passed_check, created_at)
  SELECT u.id, u.item_id, %(me)s, %(value)s, NULL, NULL, '[]'::jsonb, %(comment)s,
    GREATEST(0, EXTRACT(EPOCH FROM %(now)s - u.started))::float8,
    CASE WHEN i.kind <> 'normal' AND i.expected_min IS NOT NULL AND i.expected_max IS NOT NULL
      THEN %(value)s BETWEEN i.expected_min AND i.expected_max END,
    %(now)s
  FROM submitted u JOIN annotations_item i ON i.id = u.item_id
  RETURNING id, assignment_id, item_id, seconds_on_item, passed_check
), counted AS (
  UPDATE annotations_annotator SET failed_checks = failed_checks + 1
  WHERE id = %(me)s AND EXISTS (SELECT 1 FROM rated WHERE rated.passed_check = false)
)
SELECT r.id, r.assignment_id, r.item_id, r.seconds_on_item, r.passed_check,
  u.min_median_seconds, u.max_failed_checks, u.failed_check_action
FROM rated r JOIN submitted u ON u.id = r.assignment_id
"""
_STUDY_RULES = ("min_median_seconds", "max_failed_checks", "failed_check_action")


def _rating_submit_fast(
    *, annotator: Annotator, token: uuid.UUID, raw: object, comment: str
) -> SubmitResult | None:
    """The one-statement submit (PostgreSQL); None when the exact path must decide."""
    try:
        value = int(str(raw).strip())  # the parse rating_value_parse does; its errors come from the exact path
    except (TypeError, ValueError):
        return None
    now = timezone.now()
    with prepared_cursor() as cursor:
        cursor.execute(_FAST_SUBMIT_SQL, {"now": now, "token": token, "me": annotator.pk, "value": value,
                                          "comment": comment})
        row = cursor.fetchone()
    if row is None:
        return None
    rating_id, assignment_id, item_id, seconds, passed, *rules = row
    rating = Rating(id=rating_id, assignment_id=assignment_id, item_id=item_id, annotator_id=annotator.pk,
                    value=value, comment=comment, shown_order=[], seconds_on_item=seconds, passed_check=passed,
                    created_at=now)
    rating._state.adding = False
    rating._state.db = connection.alias
    # The rules as the statement read them; Study's other fields stay deferred (from_db wants model order).
    read = dict(zip(("id", *_STUDY_RULES), (annotator.study_id, *rules), strict=True))
    names = [field.attname for field in Study._meta.concrete_fields if field.attname in read]
    study = Study.from_db(connection.alias, names, [read[name] for name in names])
    ended = annotator_exclusion_apply(annotator=annotator, study=study, check_failed=passed is False, now=now,
                                      counted=True)
    return SubmitResult(rating=rating, created=True, check_failed=passed is False, session_ended=ended)


def rating_submit(
    *, annotator: Annotator, assignment_token: object, value: object = None, comment: str = "",
    best: object = None, worst: object = None,
) -> SubmitResult:
    """Store the annotator's rating (Likert `value`) or choice (`best`/`worst` option ids) for an assignment.

    A replay (double click, back button, retried POST) of a submitted assignment returns the stored
    rating unchanged: a submitted rating is final. A late submit of an expired assignment is kept when
    the item still has a free slot (nothing lost), refused otherwise.
    """
    token = _token_parse(assignment_token)
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise RatingInvalid(f"the comment is longer than {MAX_COMMENT_CHARS} characters")
    with transaction.atomic():
        if connection.vendor == "postgresql" and value is not None:
            fast = _rating_submit_fast(annotator=annotator, token=token, raw=value, comment=comment)
            if fast is not None:
                return fast
        # Row lock: two concurrent submits of one assignment run one after the other; the second sees
        # the first's status and becomes a replay.
        assignment = (
            Assignment.objects.select_for_update(of=("self",))
            .select_related("item", "annotator__study")
            .filter(token=token, annotator_id=annotator.pk)
            .first()
        )
        if assignment is None:
            raise AssignmentNotFound("no such assignment")
        if assignment.status == Assignment.Status.SUBMITTED:
            return SubmitResult(rating=Rating.objects.get(assignment=assignment), created=False)
        study = assignment.annotator.study
        item = assignment.item
        if study.kind == Study.Kind.LIKERT:
            parsed = rating_value_parse(study=study, raw=value)
            answer = Answer(value=parsed)
            if item.kind != Item.Kind.NORMAL and item.expected_min is not None and item.expected_max is not None:
                answer = Answer(value=parsed, passed=item.expected_min <= parsed <= item.expected_max)
        else:
            answer = choice_parse(study=study, item=item, best=best, worst=worst, seed=assignment.annotator.order_seed)
        now = timezone.now()
        if assignment.status == Assignment.Status.EXPIRED or assignment.expires_at <= now:
            if assignment.annotator.excluded or not item_slot_free_locked(
                item_id=assignment.item_id, study=study, excluding=assignment.pk
            ):
                Assignment.objects.filter(pk=assignment.pk).update(status=Assignment.Status.EXPIRED)
                raise AssignmentExpired("the time for this item ran out and it went to another annotator")
        passed = answer.passed
        started = assignment.shown_at or assignment.created_at
        rating = Rating(
            assignment=assignment, item=item, annotator_id=annotator.pk, value=answer.value, comment=comment,
            best=answer.best, worst=answer.worst, shown_order=answer.shown_order or [],
            seconds_on_item=max(0.0, (now - started).total_seconds()), passed_check=passed,
        )
        _rating_store(rating=rating, assignment=assignment, now=now)
        ended = annotator_exclusion_apply(
            annotator=assignment.annotator, study=study, check_failed=passed is False, now=now
        )
    return SubmitResult(rating=rating, created=True, check_failed=passed is False, session_ended=ended)


def assignment_mark_shown(*, assignment: Assignment) -> None:
    """Time on item starts at the first display; a reload does not restart the clock."""
    if assignment.shown_at is None:
        now = timezone.now()
        Assignment.objects.filter(pk=assignment.pk, shown_at__isnull=True).update(shown_at=now)
        assignment.shown_at = now
