"""Studies, annotators, assignments, ratings and the reports built on them.

`annotations` may import `inference`; never the reverse.
"""
from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models

from inference.models import Dataset, Generation, Sample

RESEARCHER_GROUP = "researcher"


def _completion_code() -> str:
    return secrets.token_hex(4).upper()


def _token() -> str:
    # Kept for migration 0001 (the old plain-text key default); tokens are made in services/tokens.py.
    return secrets.token_urlsafe(32)


def _salt() -> str:
    return secrets.token_hex(16)


PROLIFIC_COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc={code}"


class Study(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        PAUSED = "paused", "Paused"  # no newcomers; participants already in carry on
        CLOSED = "closed", "Closed"

    class EarlyFinish(models.TextChoices):
        PARTIAL_CODE = "partial", "Partial-completion code"
        FULL_CODE = "code", "The completion code"
        NO_CODE = "none", "No code"

    class Kind(models.TextChoices):
        LIKERT = "likert", "Likert rating"
        BWS = "bws", "Best–worst scaling"
        PAIRWISE = "pairwise", "Pairwise choice"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT)
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="studies")
    selection = models.JSONField(default=dict, blank=True, help_text="Filters that chose the Generations.")
    question = models.TextField(
        default="How well does this description match the person's emotional expression?"
    )
    scale_min = models.IntegerField(default=1)
    scale_max = models.IntegerField(default=5)
    scale_labels = models.JSONField(
        default=list, blank=True, help_text="One label per scale point, lowest first."
    )
    raters_per_item = models.PositiveIntegerField(default=3, help_text="k distinct raters per item.")
    # What one judgment is (docs/annotation.md "Choosing an instrument"): a Likert rating of one
    # description, or a comparative unit of 4 (best–worst) or 2 (pairwise) descriptions of one sample.
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.LIKERT)
    allow_ties = models.BooleanField(default=False, help_text="Pairwise: offer 'equally good'.")
    design_seed = models.IntegerField(default=0, help_text="Comparative: seed of the tuple design.")
    unit_appearances = models.PositiveIntegerField(
        default=8, help_text="Comparative: units each description appears in (K&M: 8, i.e. 2N 4-tuples)."
    )
    show_image = models.BooleanField(default=True)
    show_va = models.BooleanField(default=False)
    show_reference = models.BooleanField(default=False)
    instructions = models.TextField(blank=True)
    consent_text = models.TextField(blank=True)
    completion_code = models.CharField(max_length=40, default=_completion_code)
    completion_url_template = models.CharField(
        max_length=500, blank=True, default=PROLIFIC_COMPLETION_URL,
        help_text="Where a Prolific participant is sent at the end; {code} is replaced by the code. Blank: no redirect.",
    )
    partial_completion_code = models.CharField(max_length=40, default=_completion_code)
    early_finish = models.CharField(
        max_length=8, choices=EarlyFinish.choices, default=EarlyFinish.PARTIAL_CODE,
        help_text="What a participant who presses 'finish now' before their budget is used up gets.",
    )
    items_per_participant = models.PositiveIntegerField(
        null=True, blank=True, help_text="Items one participant rates at most (checks come on top). Blank: all."
    )
    max_participants = models.PositiveIntegerField(null=True, blank=True, help_text="Blank: no cap.")
    expected_minutes = models.PositiveIntegerField(null=True, blank=True)
    pay_per_hour = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    pay_currency = models.CharField(max_length=3, default="GBP")
    pseudonym_salt = models.CharField(max_length=64, default=_salt, editable=False)
    # Exclusion rules: an annotator is excluded when they fail more than this many attention/gold
    # items, or their median time per item is below the floor.
    max_failed_checks = models.PositiveIntegerField(default=0)
    min_median_seconds = models.FloatField(default=0)
    class FailedCheckAction(models.TextChoices):
        CONTINUE = "continue", "Continue silently"
        WARN = "warn", "Show a warning"
        END = "end", "End the session"

    failed_check_action = models.CharField(max_length=10, choices=FailedCheckAction.choices,
                                           default=FailedCheckAction.WARN)
    assignment_timeout_minutes = models.PositiveIntegerField(default=30)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who may see and act on the study (annotations/access.py): the owner, the collaborators, superusers.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_studies"
    )
    collaborators = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="shared_studies")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return self.name


class Item(models.Model):
    class Kind(models.TextChoices):
        NORMAL = "normal", "Normal"
        GOLD = "gold", "Gold (known answer range)"
        ATTENTION = "attention", "Attention check"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="items")
    generation = models.ForeignKey(
        Generation, null=True, blank=True, on_delete=models.PROTECT, related_name="study_items"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.NORMAL)
    text = models.TextField(help_text="What the annotator reads (snapshot of the description).")
    # Comparative units: the sample whose face is shown; the descriptions are the unit's `options`.
    sample = models.ForeignKey(Sample, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    expected_min = models.IntegerField(null=True, blank=True)
    expected_max = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "generation"],
                condition=models.Q(generation__isnull=False),
                name="item_unique_generation",
            ),
        ]

    def __str__(self) -> str:
        return f"item {self.pk} ({self.kind})"


class UnitOption(models.Model):
    """One description shown in a comparative unit (an Item of a best–worst or pairwise study)."""

    class Expected(models.TextChoices):
        NONE = "", "—"
        BEST = "best", "Known best"
        WORST = "worst", "Known worst"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="options")
    position = models.PositiveSmallIntegerField(help_text="Order in the design; each annotator sees a shuffle.")
    generation = models.ForeignKey(
        Generation, null=True, blank=True, on_delete=models.PROTECT, related_name="unit_options"
    )
    text = models.TextField(help_text="What the annotator reads (snapshot of the description).")
    expected = models.CharField(max_length=5, choices=Expected.choices, blank=True, help_text="Gold units only.")

    class Meta:
        ordering = ["item_id", "position"]
        constraints = [models.UniqueConstraint(fields=["item", "position"], name="unit_option_unique_position")]

    def __str__(self) -> str:
        return f"option {self.position} of item {self.item_id}"


class Annotator(models.Model):
    class Platform(models.TextChoices):
        ACCOUNT = "account", "Account"
        PROLIFIC = "prolific", "Prolific"
        MTURK = "mturk", "MTurk"

    class Outcome(models.TextChoices):
        COMPLETE = "complete", "Completed their items"
        PARTIAL = "partial", "Finished early"
        CLOSED = "closed", "Study closed or full"
        ENDED = "ended", "Session ended by a failed check"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="annotators")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="annotator_sessions"
    )
    platform = models.CharField(max_length=10, choices=Platform.choices)
    external_id = models.CharField(max_length=200, help_text="Worker id (PROLIFIC_PID, workerId) or user id.")
    external_session = models.CharField(max_length=200, blank=True)
    external_study = models.CharField(max_length=200, blank=True)
    order_seed = models.BigIntegerField(default=0)
    consented_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_checks = models.PositiveIntegerField(default=0)
    excluded = models.BooleanField(default=False)
    exclusion_reason = models.CharField(max_length=300, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, blank=True)
    # MTurk's turkSubmitTo (checked against MTurk's hosts): where the external-submit form posts.
    submit_to = models.CharField(max_length=200, blank=True)
    identity_erased_at = models.DateTimeField(null=True, blank=True)
    # Kept when the identity is erased, so exports made before and after the erasure still agree.
    pseudonym = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "platform", "external_id"], name="annotator_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.platform}:{self.external_id}"


class Assignment(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUBMITTED = "submitted", "Submitted"
        EXPIRED = "expired", "Expired"

    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(Annotator, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    shown_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="assignment_unique"),
        ]
        indexes = [models.Index(fields=["item", "status"])]


class Rating(models.Model):
    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="rating")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="ratings")
    annotator = models.ForeignKey(Annotator, on_delete=models.CASCADE, related_name="ratings")
    value = models.IntegerField(null=True, blank=True, help_text="Likert studies; empty for comparative choices.")
    # Comparative choices: best and worst (pairwise: preferred and other; both empty: "equally good"),
    # and the option ids in the order this annotator saw them (the position in the raw-choice export).
    best = models.ForeignKey(UnitOption, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    worst = models.ForeignKey(UnitOption, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    shown_order = models.JSONField(default=list, blank=True)
    comment = models.TextField(blank=True)
    seconds_on_item = models.FloatField(null=True, blank=True)
    passed_check = models.BooleanField(null=True, blank=True, help_text="Gold/attention items only.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="rating_unique"),
        ]


class Report(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="reports")
    version = models.PositiveIntegerField()
    params = models.JSONField(default=dict, blank=True)
    results = models.JSONField(default=dict, blank=True)
    html = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study_id", "-version"]
        constraints = [models.UniqueConstraint(fields=["study", "version"], name="report_unique_version")]


class ApiToken(models.Model):
    """Bearer token for the researcher JSON endpoints.

    Only a SHA-256 of the key is stored (`annotations/services/tokens.py`): the key is shown once, when
    the token is created, and a leaked database or admin screen gives no usable token. `prefix` (the
    key's first characters) tells tokens apart on screen. A token stops working at `expires_at`, when
    revoked, or when its user is deactivated."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False)
    name = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'unnamed'}, {self.user})"
