"""Forms of the annotator pages; the services validate again (they are also called from code)."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

from inference.models import Dataset, Generation, LLMConfig, PromptTemplate

from .models import RESEARCHER_GROUP, Item, Study
from .services.ratings import MAX_COMMENT_CHARS
from .services.studies import COMPARATIVE_QUESTIONS, check_item_parse


class SingleValueForm(forms.Form):
    """Refuses a field sent twice (`value=3&value=5`): which one counts would otherwise be an accident of
    parsing (Django keeps the last). Multiple-choice fields are exempt; they are meant to repeat."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        getlist = getattr(self.data, "getlist", None)
        if getlist is not None:
            for name, field in self.fields.items():
                if not isinstance(field, forms.MultipleChoiceField | forms.ModelMultipleChoiceField) and len(
                    getlist(self.add_prefix(name))
                ) > 1:
                    self.add_error(name if name in self.fields else None, "This field was sent more than once.")
        return cleaned


class ConsentForm(SingleValueForm):
    agree = forms.BooleanField(
        required=True, label="I have read the information above and agree to take part.",
        error_messages={"required": "Please tick the box to give your consent, or close this page to leave."},
    )


class RatingForm(SingleValueForm):
    value = forms.TypedChoiceField(coerce=int, label="Your rating")
    comment = forms.CharField(
        required=False, max_length=MAX_COMMENT_CHARS, label="Comment (optional)",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, study: Study, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["value"].choices = [(v, str(v)) for v in range(study.scale_min, study.scale_max + 1)]
        self.fields["value"].error_messages["invalid_choice"] = (
            f"Choose a rating from {study.scale_min} to {study.scale_max}."
        )
        self.fields["value"].error_messages["required"] = "Choose a rating before submitting."


class ChoiceForm(SingleValueForm):
    """A best–worst (best, worst) or pairwise (best = the preferred option or "tie") answer; the service checks it."""

    best = forms.CharField(required=False, max_length=20)
    worst = forms.CharField(required=False, max_length=20)
    comment = forms.CharField(required=False, max_length=MAX_COMMENT_CHARS, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, study: Study, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.study = study


class StudyStatusForm(SingleValueForm):
    status = forms.ChoiceField(choices=Study.Status.choices)


class StudyForm(SingleValueForm):
    """Every setting of a study on one page; the service (`study_create` / `study_update`) validates again
    and its errors are shown on this form, so nothing is half-created."""

    name = forms.CharField(max_length=200)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"), required=False,
                                     empty_label="Any dataset")
    configs = forms.ModelMultipleChoiceField(queryset=LLMConfig.objects.order_by("name"), required=False,
                                             label="LLM configs", help_text="None selected: all.")
    prompts = forms.MultipleChoiceField(choices=(), required=False, label="Prompts",
                                        help_text="All versions of each name; none selected: all.")
    task = forms.ChoiceField(choices=PromptTemplate.Task.choices, initial=PromptTemplate.Task.DESCRIBE)
    statuses = forms.MultipleChoiceField(
        choices=Generation.Status.choices, initial=[Generation.Status.OK], label="Generation status",
        required=False, help_text="Which generations are rated; none selected: ok only (the ones that parsed).")
    kind = forms.ChoiceField(
        choices=Study.Kind.choices, initial=Study.Kind.LIKERT, label="Instrument", required=False,
        help_text="Likert: rate one description. Best–worst: the face with 4 of its descriptions, choose the best "
                  "and the worst match. Pairwise: 2 descriptions, choose the better. See docs/annotation.md.")
    allow_ties = forms.BooleanField(required=False, label="Pairwise: offer 'equally good'")
    unit_appearances = forms.IntegerField(
        min_value=1, initial=8, required=False, label="Best–worst / pairwise: units per description",
        help_text="How many units each description appears in (8 = Kiritchenko & Mohammad's 2N 4-tuples).")
    gold_units = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Best–worst / pairwise gold units",
        help_text="One per line: the known best first and the known worst last, separated by | "
                  "(4 texts for best–worst, 2 for pairwise).")
    question = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), initial=Study._meta.get_field(
        "question").default)
    scale_min = forms.IntegerField(initial=1)
    scale_max = forms.IntegerField(initial=5)
    scale_labels = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                   help_text="One label per scale point, lowest first, one per line. Empty: the "
                                             "default Likert labels for 1-5, numbers otherwise.")
    raters_per_item = forms.IntegerField(min_value=1, initial=3, label="Raters per item (k)")
    items_per_participant = forms.IntegerField(min_value=1, required=False, initial=20,
                                               help_text="Checks come on top. Empty: every item.")
    assignment_timeout_minutes = forms.IntegerField(min_value=1, initial=30, label="Time limit per item (minutes)")
    show_image = forms.BooleanField(required=False, initial=True)
    show_va = forms.BooleanField(required=False, label="Show valence/arousal")
    show_reference = forms.BooleanField(required=False, label="Show the reference description")
    instructions = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))
    consent_text = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}))
    check_items = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Attention / gold items",
        help_text="One per line: TEXT|MIN|MAX (accepted ratings); start a line with 'gold:' for a gold item.")
    max_failed_checks = forms.IntegerField(min_value=0, initial=0)
    min_median_seconds = forms.FloatField(min_value=0, initial=0, label="Minimum median seconds per item")
    failed_check_action = forms.ChoiceField(
        choices=[("continue", "Continue silently"), ("warn", "Show a warning"), ("end", "End the session")],
        initial="warn")
    completion_code = forms.CharField(max_length=40)
    completion_url_template = forms.CharField(
        max_length=500, required=False, label="Completion URL",
        help_text="Prolific participants are sent here at the end; {code} becomes the code. Empty: no redirect.")
    early_finish = forms.ChoiceField(choices=Study.EarlyFinish.choices, label="'Finish now' gives")
    partial_completion_code = forms.CharField(max_length=40)
    max_participants = forms.IntegerField(min_value=1, required=False, help_text="Empty: no cap.")
    expected_minutes = forms.IntegerField(min_value=1, required=False)
    pay_per_hour = forms.DecimalField(min_value=0, max_digits=8, decimal_places=2, required=False)
    pay_currency = forms.CharField(max_length=3, initial="GBP")
    collaborators = forms.ModelMultipleChoiceField(queryset=None, required=False,
                                                   help_text="Researchers who may see and manage this study.")

    def __init__(self, *args: Any, owner: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = PromptTemplate.objects.order_by("name").values_list("name", flat=True).distinct()
        self.fields["prompts"].choices = [(name, name) for name in names]
        people = get_user_model().objects.filter(is_active=True).filter(
            Q(is_staff=True) | Q(is_superuser=True) | Q(groups__name=RESEARCHER_GROUP)).exclude(pk=owner.pk)
        self.fields["collaborators"].queryset = people.distinct().order_by("username")

    def study_kwargs(self) -> dict[str, Any]:
        """The cleaned data as the service's keyword arguments."""
        data = self.cleaned_data
        labels = [line.strip() for line in (data["scale_labels"] or "").splitlines() if line.strip()]
        checks = []
        for line in (data["check_items"] or "").splitlines():
            line = line.strip()
            if line:
                gold = line.lower().startswith("gold:")
                checks.append(check_item_parse(line[5:].strip() if gold else line,
                                               kind=Item.Kind.GOLD if gold else Item.Kind.ATTENTION))
        kind = data["kind"] or Study.Kind.LIKERT
        question = data["question"]
        if question.strip() in {Study._meta.get_field("question").default, *COMPARATIVE_QUESTIONS.values()}:
            question = None  # a default question left as it was: the service picks the instrument's own
        return {
            "kind": kind, "allow_ties": data["allow_ties"], "unit_appearances": data["unit_appearances"] or 8,
            "gold_units": [line.strip() for line in (data["gold_units"] or "").splitlines() if line.strip()],
            "name": data["name"], "dataset": data["dataset"], "config_names": [c.name for c in data["configs"]],
            "prompt_names": list(data["prompts"]), "task": data["task"],
            "statuses": list(data["statuses"]) or [Generation.Status.OK],
            "question": question, "scale_min": data["scale_min"], "scale_max": data["scale_max"],
            "scale_labels": labels or None, "attention_items": checks,
            "collaborators": list(data["collaborators"]),
            **{key: data[key] for key in (
                "items_per_participant", "assignment_timeout_minutes", "show_image", "show_va", "show_reference",
                "instructions", "consent_text", "max_failed_checks", "min_median_seconds", "failed_check_action",
                "completion_code", "completion_url_template", "early_finish", "partial_completion_code",
                "max_participants", "expected_minutes", "pay_per_hour", "pay_currency")},
        } | {"k": data["raters_per_item"]}

    @classmethod
    def initial_for(cls, study: Study) -> dict[str, Any]:
        selection = study.selection or {}
        checks = study.items.exclude(kind=Item.Kind.NORMAL).order_by("id")
        return {
            **{name: getattr(study, name) for name in (
                "name", "dataset", "question", "scale_min", "scale_max", "raters_per_item", "items_per_participant",
                "assignment_timeout_minutes", "show_image", "show_va", "show_reference", "instructions",
                "consent_text", "max_failed_checks", "min_median_seconds", "failed_check_action", "completion_code",
                "completion_url_template", "early_finish", "partial_completion_code", "max_participants",
                "expected_minutes", "pay_per_hour", "pay_currency", "kind", "allow_ties", "unit_appearances")},
            "gold_units": "\n".join(
                "|".join(c.options.order_by("position").values_list("text", flat=True))
                for c in checks if study.kind != Study.Kind.LIKERT),
            "configs": LLMConfig.objects.filter(name__in=selection.get("configs", [])),
            "prompts": selection.get("prompts", []), "task": selection.get("task", PromptTemplate.Task.DESCRIBE),
            "statuses": selection.get("statuses", [Generation.Status.OK]),
            "scale_labels": "\n".join(study.scale_labels or []),
            "check_items": "\n".join(
                f"{'gold: ' if c.kind == Item.Kind.GOLD else ''}{c.text}|{c.expected_min}|{c.expected_max}"
                for c in checks if study.kind == Study.Kind.LIKERT),
            "collaborators": study.collaborators.all(),
        }
