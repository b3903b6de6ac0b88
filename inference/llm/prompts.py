"""Prompt texts, rendering and the JSON schema of a categorization answer (pure; no database).

Following "Beyond Vision" (arXiv 2502.06875): the model sees only the valence/arousal point of a face,
on the -1..1 scale FaceChannel outputs, plus the allowed labels. The `words` variants state the same
point in words ("high arousal, slightly negative valence"), for the numbers-vs-words ablation.

Templates hold {valence}, {arousal} and (categorize) {labels}. Only these three are substituted, so a
template may contain literal JSON braces such as {"label": "..."} without escaping.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from inference.models import BASIC_LABELS, EMOTIC_LABELS

PLACEHOLDER = re.compile(r"\{(valence|arousal|labels)\}")

SYSTEM_TEXT = (
    "You are an expert in affective computing and in reading human facial expressions. You answer "
    "precisely and only in the format asked for."
)
_SCALE = (
    "A person's facial expression was measured on two dimensions, each on a scale from -1 to 1: "
    "valence (-1 = very unpleasant, 0 = neutral, 1 = very pleasant) and arousal (-1 = very calm or "
    "sleepy, 0 = neutral, 1 = very excited or agitated).\n"
    "Valence: {valence}\nArousal: {arousal}\n"
)
_SCALE_WORDS = "A person's facial expression shows {arousal} arousal and {valence} valence.\n"
_CATEGORIZE_ONE = (
    "Which one of these emotion categories best matches the expression?\nCategories: {labels}\n"
    'Answer with a JSON object {"label": "<category>"} using exactly one category from the list, and nothing else.'
)
_CATEGORIZE_MANY = (
    "Which of these emotion categories match the expression? Choose one or more.\nCategories: {labels}\n"
    'Answer with a JSON object {"labels": ["<category>", ...]} using only categories from the list, and nothing else.'
)
_DESCRIBE = (
    "Describe in one or two sentences how this person's face most likely looks and what they may be "
    "feeling. Do not mention numbers, valence or arousal."
)


@dataclass(frozen=True)
class PromptDefault:
    task: str
    name: str
    text: str
    va_format: str = "numbers"
    multilabel: bool = False
    system_text: str = SYSTEM_TEXT


PROMPT_DEFAULTS = [
    PromptDefault("categorize", "categorize-basic", _SCALE + _CATEGORIZE_ONE),
    PromptDefault("categorize", "categorize-basic-words", _SCALE_WORDS + _CATEGORIZE_ONE, va_format="words"),
    PromptDefault("categorize", "categorize-emotic", _SCALE + _CATEGORIZE_MANY, multilabel=True),
    PromptDefault("categorize", "categorize-emotic-words", _SCALE_WORDS + _CATEGORIZE_MANY, va_format="words",
                  multilabel=True),
    PromptDefault("describe", "describe", _SCALE + _DESCRIBE),
    PromptDefault("describe", "describe-words", _SCALE_WORDS + _DESCRIBE, va_format="words"),
]


def prompt_labels(*, multilabel: bool) -> list[str]:
    """The label set a categorize prompt offers: Emotic's 26 for multi-label, else the basic 7."""
    return list(EMOTIC_LABELS if multilabel else BASIC_LABELS)


def _degree(value: float) -> str:
    magnitude = abs(value)
    if magnitude < 0.35:
        return "slightly"
    if magnitude < 0.7:
        return "moderately"
    return "strongly"


def valence_words(valence: float) -> str:
    if abs(valence) < 0.1:
        return "neutral"
    return f"{_degree(valence)} {'positive' if valence > 0 else 'negative'}"


def arousal_words(arousal: float) -> str:
    if abs(arousal) < 0.1:
        return "moderate"
    level = "high" if arousal > 0 else "low"
    magnitude = abs(arousal)
    if magnitude < 0.35:
        return f"slightly {level}"
    return f"very {level}" if magnitude >= 0.7 else level


def va_words(valence: float, arousal: float) -> str:
    """e.g. 'high arousal, slightly negative valence'."""
    return f"{arousal_words(arousal)} arousal, {valence_words(valence)} valence"


def template_check(*, task: str, text: str) -> None:
    """ValueError naming what is missing when a template could not carry the VA point (or labels)."""
    found = set(PLACEHOLDER.findall(text))
    required = {"valence", "arousal"} | ({"labels"} if task == "categorize" else set())
    missing = sorted(required - found)
    if missing:
        raise ValueError(f"a {task} prompt must contain {', '.join('{' + m + '}' for m in missing)}")


def prompt_render(*, text: str, va_format: str, valence: float, arousal: float, labels: list[str]) -> str:
    if va_format == "words":
        values = {"valence": valence_words(valence), "arousal": arousal_words(arousal)}
    else:
        values = {"valence": f"{valence:.2f}", "arousal": f"{arousal:.2f}"}
    values["labels"] = ", ".join(labels)
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def answer_schema(*, labels: list[str], multilabel: bool) -> dict:
    """JSON schema the structured-output backends constrain a categorization answer to."""
    label = {"type": "string", "enum": list(labels)}
    if multilabel:
        properties: dict = {"labels": {"type": "array", "items": label}}
        required = ["labels"]
    else:
        properties, required = {"label": label}, ["label"]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
