"""Race-free assignment of items to annotators, k distinct raters per item.

The next item for an annotator is one they have not rated and hold no live assignment for, with fewer
than k live assignments (submitted, or active and unexpired) from non-excluded annotators, chosen in the
annotator's own seeded order. Claiming runs inside one transaction:

1. lock the annotator row (two tabs of one annotator never claim two items at once);
2. lock a window of candidate item rows with `SELECT … FOR UPDATE SKIP LOCKED`, so concurrent annotators
   fan out over different items instead of queueing behind one;
3. recount the live assignments of a locked item (under READ COMMITTED the count sees every claim that
   committed before we got the lock) and insert the Assignment only when a slot is free.

Gold/attention items are checks on each annotator, so every annotator gets them and they hold no slot.
On SQLite (the demo) `select_for_update` is a no-op; SQLite serialises writers, which keeps it correct.

On PostgreSQL the usual claim is two statements (`_claim_fast`) enforcing the same rules: the first locks
the annotator row and a window of candidate items (both SKIP LOCKED), the second recounts under those locks
with a fresh snapshot and inserts or revives the claim. Whenever that finds nothing (an item in hand, the
annotator row held by another tab, a full window, the end of the session) the exact path above decides.
"""
from __future__ import annotations

import hashlib
import time
import uuid
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from evalplatform.db import prepared_cursor

from .models import Annotator, Assignment, Item, Study
from .selectors import annotator_budget_left, live_assignments_q

# Participants already in keep claiming while a study is paused (it only stops newcomers); closing stops
# new claims for everyone, but the item in hand can still be finished.
CLAIMING_STATUSES = (Study.Status.OPEN, Study.Status.PAUSED)

WINDOW = 16  # item rows locked per probe: enough to get past a few in-flight claims, small to lock
ATTEMPTS = 4  # passes when every free candidate was locked by a concurrent claim (they commit in ms)


class AnnotatorNotReady(RuntimeError):
    """The annotator has not consented yet; assignment must not start before consent."""


def item_order_key(*, seed: int, item_id: int) -> tuple[bytes, int]:
    """Per-annotator order: a hash of (seed, item) is stable on reload and independent of what others took.

    md5 because PostgreSQL computes the same key in SQL (`_FAST_WINDOW_SQL`); it orders, it protects nothing.
    """
    return hashlib.md5(f"{seed}:{item_id}".encode(), usedforsecurity=False).digest()[:8], item_id


def assignments_expire(*, annotator: Annotator, now: datetime | None = None) -> int:
    """Mark the annotator's abandoned assignments expired, so the item can be revived for them.

    Other annotators' slots need no write: a live slot is defined by `expires_at`, so an abandoned
    assignment stops counting at that moment whether or not its status was updated.
    """
    return Assignment.objects.filter(
        annotator=annotator, status=Assignment.Status.ACTIVE, expires_at__lte=now or timezone.now()
    ).update(status=Assignment.Status.EXPIRED)


def assignment_current(*, annotator: Annotator, now: datetime | None = None) -> Assignment | None:
    """The annotator's oldest live assignment (a reload shows the same item again)."""
    return (
        Assignment.objects.filter(
            annotator=annotator, status=Assignment.Status.ACTIVE, expires_at__gt=now or timezone.now()
        )
        .select_related("item")
        .order_by("created_at", "id")
        .first()
    )


def _candidates(*, annotator: Annotator, study: Study, checks_only: bool = False) -> QuerySet[Item]:
    mine = Assignment.objects.filter(annotator=annotator).exclude(status=Assignment.Status.EXPIRED)
    items = Item.objects.filter(study=study)
    if checks_only:
        # The budget is spent: what remains are the checks every participant gets.
        items = items.exclude(kind=Item.Kind.NORMAL)
    return (
        items
        .exclude(id__in=mine.values("item_id"))
        .annotate(live=Count("assignments", filter=live_assignments_q("assignments__")))
        .filter(~Q(kind=Item.Kind.NORMAL) | Q(live__lt=study.raters_per_item))
    )


def candidate_item_ids(*, annotator: Annotator, study: Study, checks_only: bool = False) -> list[int]:
    """Items this annotator could be given now, in their seeded order."""
    rows = _candidates(annotator=annotator, study=study, checks_only=checks_only).values_list("id", flat=True)
    return sorted(rows, key=lambda item_id: item_order_key(seed=annotator.order_seed, item_id=item_id))


def _slot_free(*, item: Item, study: Study) -> bool:
    if item.kind != Item.Kind.NORMAL:
        return True
    live = Assignment.objects.filter(item_id=item.id).filter(live_assignments_q()).count()
    return live < study.raters_per_item


def item_slot_free_locked(*, item_id: int, study: Study, excluding: int | None = None) -> bool:
    """Lock one item row (waiting, not skipping) and say whether it has a free slot; used to reclaim."""
    item = Item.objects.select_for_update().only("id", "kind").get(pk=item_id)
    if item.kind != Item.Kind.NORMAL:
        return True
    live = Assignment.objects.filter(item_id=item_id).filter(live_assignments_q()).exclude(pk=excluding)
    return live.count() < study.raters_per_item


def _assignment_put(*, annotator: Annotator, item: Item, expires_at: datetime) -> Assignment | None:
    """Insert the claim, or revive the annotator's own expired row (unique per item × annotator)."""
    revived = Assignment.objects.filter(
        item=item, annotator=annotator, status=Assignment.Status.EXPIRED
    ).update(status=Assignment.Status.ACTIVE, token=uuid.uuid4(), expires_at=expires_at, shown_at=None)
    if revived:
        return Assignment.objects.select_related("item").get(item=item, annotator=annotator)
    try:
        with transaction.atomic():
            assignment = Assignment.objects.create(item=item, annotator=annotator, expires_at=expires_at)
    except IntegrityError:
        return None  # already theirs (submitted or active): not a candidate after all
    assignment.item = item
    return assignment


def _claim_in_window(
    *, annotator: Annotator, study: Study, window: list[int], expires_at: datetime
) -> tuple[Assignment | None, bool]:
    locked = {
        item.id: item
        for item in Item.objects.select_for_update(skip_locked=True).filter(id__in=window).order_by("id")
    }
    for item_id in window:
        item = locked.get(item_id)
        if item is not None and _slot_free(item=item, study=study):
            assignment = _assignment_put(annotator=annotator, item=item, expires_at=expires_at)
            if assignment is not None:
                return assignment, False
    return None, len(locked) < len(window)


# A slot is live when submitted, or active and unexpired, and its annotator is not excluded
# (live_assignments_q in SQL); %(now)s is the claim's clock.
_LIVE_COUNT = """(SELECT count(*) FROM annotations_assignment l
    JOIN annotations_annotator la ON la.id = l.annotator_id
    WHERE l.item_id = i.id AND NOT la.excluded
      AND (l.status = 'submitted' OR (l.status = 'active' AND l.expires_at > %(now)s)))"""
# Normal items only while the participant's budget (normal items rated) is not spent.
_BUDGET_OPEN = """(s.items_per_participant IS NULL OR s.items_per_participant > (
    SELECT count(*) FROM annotations_rating r JOIN annotations_item ri ON ri.id = r.item_id
    WHERE r.annotator_id = a.id AND ri.kind = 'normal'))"""
_NO_ITEM_IN_HAND = """NOT EXISTS (SELECT 1 FROM annotations_assignment c
    WHERE c.annotator_id = a.id AND c.status = 'active' AND c.expires_at > %(now)s)"""
_ANNOTATOR_CLAIMABLE = f"""a.consented_at IS NOT NULL AND a.completed_at IS NULL AND a.identity_erased_at IS NULL
  AND s.status = ANY(%(statuses)s::text[]) AND {_NO_ITEM_IN_HAND}"""
_CLAIMABLE = f"""{_ANNOTATOR_CLAIMABLE}
  AND (i.kind <> 'normal' OR ({_BUDGET_OPEN} AND {_LIVE_COUNT} < s.raters_per_item))"""
_NOT_MINE = """NOT EXISTS (SELECT 1 FROM annotations_assignment m WHERE m.item_id = i.id AND m.annotator_id = %(me)s
    AND (m.status = 'submitted' OR (m.status = 'active' AND m.expires_at > %(now)s)))"""

# Statement 1: expire the annotator's own abandoned claims (skipping one a late submit holds), lock the
# annotator row, and lock the first WINDOW candidates in their seeded order. The annotator-level rules
# (consent, item in hand, budget) are read once (`me`); the items are sorted first and each one's live
# slots are counted only as the scan reaches it, so a claim costs the sort plus about WINDOW counts rather
# than a count for every item of the study (3 ms instead of 13 on 600 items). Items locked on the way that
# turn out full are full for everyone. Its reads use the snapshot from before the locks, so statement 2
# rechecks everything.
_FAST_WINDOW_SQL = f"""
WITH expired AS (
  UPDATE annotations_assignment SET status = 'expired' WHERE id IN (
    SELECT id FROM annotations_assignment WHERE annotator_id = %(me)s AND status = 'active'
      AND expires_at <= %(now)s FOR UPDATE SKIP LOCKED)
  RETURNING id
), me AS (
  SELECT a.study_id, a.order_seed, s.raters_per_item, s.assignment_timeout_minutes, {_BUDGET_OPEN} AS normal_open
  FROM annotations_annotator a JOIN annotations_study s ON s.id = a.study_id
  WHERE a.id = %(me)s AND {_ANNOTATOR_CLAIMABLE}
  FOR UPDATE OF a SKIP LOCKED
)
SELECT i.id, me.assignment_timeout_minutes
FROM me, LATERAL (
  SELECT i.id, i.kind FROM annotations_item i
  WHERE i.study_id = me.study_id AND (i.kind <> 'normal' OR me.normal_open) AND {_NOT_MINE}
  ORDER BY left(md5(me.order_seed::text || ':' || i.id::text), 16) COLLATE "C", i.id
  FOR UPDATE OF i SKIP LOCKED
) i
WHERE i.kind <> 'normal' OR {_LIVE_COUNT} < me.raters_per_item
LIMIT %(window)s
"""

# Statement 2 (fresh snapshot, under the locks of statement 1): the first window item that is still free
# for this annotator, inserted as their claim or revived from their own expired row. A row of theirs that
# is not 'expired' here (submitted, live, or a late submit in progress) excludes the item, so the upsert
# never waits on a row lock while holding the item locks.
_FAST_CLAIM_SQL = f"""
WITH pick AS (
  SELECT i.id FROM annotations_item i
  JOIN annotations_annotator a ON a.id = %(me)s AND a.study_id = i.study_id
  JOIN annotations_study s ON s.id = a.study_id
  WHERE i.id = ANY(%(window_ids)s::bigint[]) AND {_CLAIMABLE}
    AND NOT EXISTS (SELECT 1 FROM annotations_assignment m WHERE m.item_id = i.id AND m.annotator_id = a.id
      AND m.status <> 'expired')
  ORDER BY array_position(%(window_ids)s::bigint[], i.id)
  LIMIT 1
)
INSERT INTO annotations_assignment (token, item_id, annotator_id, status, created_at, shown_at, expires_at)
SELECT %(token)s, pick.id, %(me)s, 'active', %(now)s, NULL, %(expires_at)s FROM pick
ON CONFLICT ON CONSTRAINT assignment_unique DO UPDATE
  SET status = 'active', token = EXCLUDED.token, expires_at = EXCLUDED.expires_at, shown_at = NULL
  WHERE annotations_assignment.status = 'expired'
RETURNING id, token, item_id, annotator_id, status, created_at, shown_at, expires_at, submitted_at
"""
_RETURNED = ("id", "token", "item_id", "annotator_id", "status", "created_at", "shown_at", "expires_at",
             "submitted_at")


def _claim_fast(*, annotator: Annotator) -> Assignment | None:
    """Claim in two statements on PostgreSQL; None means 'let the exact path decide', never 'nothing left'."""
    now = timezone.now()
    statuses = [str(status) for status in CLAIMING_STATUSES]
    params = {"me": annotator.pk, "now": now, "statuses": statuses, "window": WINDOW}
    with transaction.atomic(), prepared_cursor() as cursor:
        cursor.execute(_FAST_WINDOW_SQL, params)
        rows = cursor.fetchall()
        if not rows:
            return None
        window_ids = [row[0] for row in rows]
        cursor.execute(_FAST_CLAIM_SQL, {
            **params, "window_ids": window_ids, "token": uuid.uuid4(),
            "expires_at": now + timedelta(minutes=rows[0][1]),
        })
        row = cursor.fetchone()
    return Assignment.from_db(connection.alias, list(_RETURNED), row) if row is not None else None


def assignment_next(*, annotator: Annotator) -> Assignment | None:
    """The annotator's current assignment, or a newly claimed one; None when nothing is left for them."""
    if annotator.consented_at is None:
        raise AnnotatorNotReady("the annotator has not consented yet")
    if connection.vendor == "postgresql":
        claimed = _claim_fast(annotator=annotator)
        if claimed is not None:
            return claimed
    assignments_expire(annotator=annotator)
    for attempt in range(ATTEMPTS):
        saw_locked = False
        with transaction.atomic():
            # of=self: without it PostgreSQL also locks the joined study row and every claim in the
            # study would queue behind one lock.
            me = Annotator.objects.select_for_update(of=("self",)).select_related("study").get(pk=annotator.pk)
            study = me.study
            if me.completed_at is not None or me.identity_erased_at is not None:
                return None
            # The item in hand stays theirs whatever happened to the study since (closed, paused, full).
            current = assignment_current(annotator=me)
            if current is not None:
                return current
            if study.status not in CLAIMING_STATUSES:
                return None
            expires_at = timezone.now() + timedelta(minutes=study.assignment_timeout_minutes)
            budget_left = annotator_budget_left(annotator=me)
            ordered = candidate_item_ids(annotator=me, study=study, checks_only=budget_left == 0)
            for start in range(0, len(ordered), WINDOW):
                assignment, skipped = _claim_in_window(
                    annotator=me, study=study, window=ordered[start : start + WINDOW], expires_at=expires_at
                )
                if assignment is not None:
                    return assignment
                saw_locked = saw_locked or skipped
        if not saw_locked:
            return None
        # Every free item was mid-claim by someone else; those transactions end within milliseconds.
        time.sleep(0.005 * (attempt + 1))
    return None


# The progress bar's count on PostgreSQL in one statement, with _candidates' rules: the annotator's own items
# (any but expired) left out, check items always open, normal items while they have a free slot.
_REMAINING_SQL = f"""
SELECT count(*) FILTER (WHERE i.kind <> 'normal'), count(*) FILTER (WHERE i.kind = 'normal' AND i.live < i.k)
FROM (
  SELECT i.kind, s.raters_per_item AS k, CASE WHEN i.kind = 'normal' THEN {_LIVE_COUNT} END AS live
  FROM annotations_item i JOIN annotations_study s ON s.id = i.study_id
  WHERE i.study_id = %(study)s AND NOT EXISTS (SELECT 1 FROM annotations_assignment m
    WHERE m.item_id = i.id AND m.annotator_id = %(me)s AND m.status <> 'expired')
) i
"""


def remaining_checks_and_normal(*, annotator: Annotator, orm: bool = False) -> tuple[int, int]:
    """Check items and normal items still open to the annotator; `orm`: the portable path SQLite takes."""
    if connection.vendor == "postgresql" and not orm:
        # One pass over the study's items instead of two grouped joins (17 ms on 600 items): it is the
        # first page of every session, and again whenever the cached estimate runs out.
        with prepared_cursor() as cursor:
            cursor.execute(_REMAINING_SQL, {"study": annotator.study_id, "me": annotator.pk, "now": timezone.now()})
            checks, normal = cursor.fetchone()
        return checks, normal
    study = annotator.study
    checks = _candidates(annotator=annotator, study=study, checks_only=True).count()
    normal = _candidates(annotator=annotator, study=study).filter(kind=Item.Kind.NORMAL).count()
    return checks, normal


def annotator_remaining_count(*, annotator: Annotator) -> int:
    """Items still open to this annotator besides the ones they hold (for the progress bar)."""
    # Counted in SQL: the progress bar needs how many, not the seeded order.
    checks, normal = remaining_checks_and_normal(annotator=annotator)
    budget_left = annotator_budget_left(annotator=annotator)
    if budget_left is not None:
        normal = min(normal, max(0, budget_left - 1))  # minus the one in hand
    return checks + normal
