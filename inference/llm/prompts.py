"""Default prompts (after "Beyond Vision", arXiv 2502.06875), VA-as-words, rendering, output schemas.

The study gives the model a face's valence and arousal on a -1..1 scale and asks it (1) to pick an emotion
from a fixed list (basic emotions; Emotic's 26 categories, several allowed) and (2) to describe the facial
expression in free text. The `*-words` variants give VA as words instead of numbers, for the ablation
"does the model read the numbers, or only their gist?". Prompt rows are versioned: these texts seed
version 1 and are never written over (see `prompt_defaults_ensure`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inference.models import BASIC_LABELS, EMOTIC_LABELS

PLACEHOLDERS = ("{valence}", "{arousal}", "{labels}")

SYSTEM = "You are an expert in affective computing who interprets facial expressions."

_SCALE = (
    "A person's facial expression was measured on two dimensions, each on a scale from -1 to 1:\n"
    "valence (-1 = very negative or unpleasant, 0 = neutral, 1 = very positive or pleasant) and\n"
    "arousal (-1 = very calm or sleepy, 0 = neutral, 1 = very excited or activated).\n"
    "Valence: {valence}\nArousal: {arousal}\n\n"
)
_WORDS = "A person's facial expression shows {valence} and {arousal}.\n\n"

_CATEGORIZE_ONE = (
    "Which emotion does this facial expression show? Choose exactly one of: {labels}.\n"
    'Answer with JSON only, in the form {"label": "<one emotion from the list>"}.'
)
_CATEGORIZE_MANY = (
    "Which emotions does this facial expression show? Choose one or more of: {labels}.\n"
    'Answer with JSON only, in the form {"labels": ["<emotion from the list>", ...]}.'
)
_DESCRIBE = (
    "Describe this person's facial expression and the emotion it conveys in one or two sentences. "
    "Answer with the description only."
)


@dataclass(frozen=True)
class PromptDefault:
    name: str
    task: str
    text: str
    va_format: str = "numbers"
    multilabel: bool = False
    system_text: str = SYSTEM


PROMPT_DEFAULTS = [
    PromptDefault("categorize-basic", "categorize", _SCALE + _CATEGORIZE_ONE),
    PromptDefault("categorize-basic-words", "categorize", _WORDS + _CATEGORIZE_ONE, va_format="words"),
    PromptDefault("categorize-emotic", "categorize", _SCALE + _CATEGORIZE_MANY, multilabel=True),
    PromptDefault("categorize-emotic-words", "categorize", _WORDS + _CATEGORIZE_MANY, va_format="words",
                  multilabel=True),
    PromptDefault("describe", "describe", _SCALE + _DESCRIBE),
    PromptDefault("describe-words", "describe", _WORDS + _DESCRIBE, va_format="words"),
]


class PromptInvalid(ValueError):
    """A prompt text that cannot be rendered for its task."""


def prompt_labels(*, multilabel: bool) -> list[str]:
    """The label set a categorize prompt lists: Emotic's 26 categories (multi-label) or the basic 7."""
    return list(EMOTIC_LABELS if multilabel else BASIC_LABELS)


def prompt_text_check(*, task: str, text: str) -> None:
    missing = [p for p in PLACEHOLDERS[:2] if p not in text]
    if task == "categorize" and "{labels}" not in text:
        missing.append("{labels}")
    if missing:
        raise PromptInvalid(f"a {task} prompt must contain {', '.join(missing)}")


def _degree(value: float) -> str:
    magnitude = abs(value)
    if magnitude < 0.35:
        return "slightly "
    if magnitude < 0.7:
        return "moderately "
    return "very "


def va_words(*, valence: float, arousal: float) -> tuple[str, str]:
    """VA as words for the ablation, e.g. (-0.2, 0.6) -> ("slightly negative valence", "moderately high arousal")."""
    valence_text = ("neutral" if abs(valence) < 0.1 else
                    f"{_degree(valence)}{'positive' if valence > 0 else 'negative'}") + " valence"
    arousal_text = ("medium" if abs(arousal) < 0.1 else
                    f"{_degree(arousal)}{'high' if arousal > 0 else 'low'}") + " arousal"
    return valence_text, arousal_text


def prompt_render(*, text: str, task: str, va_format: str, valence: float, arousal: float,
                  labels: list[str]) -> str:
    """Fill the placeholders. Plain replacement, not str.format: prompt texts hold literal JSON braces."""
    prompt_text_check(task=task, text=text)
    if va_format == "words":
        valence_text, arousal_text = va_words(valence=valence, arousal=arousal)
    else:
        valence_text, arousal_text = f"{valence:+.2f}", f"{arousal:+.2f}"
    return (text.replace("{valence}", valence_text).replace("{arousal}", arousal_text)
            .replace("{labels}", ", ".join(labels)))


def answer_schema(*, labels: list[str], multilabel: bool) -> dict[str, Any]:
    """JSON schema of a categorization answer; backends with structured output enforce it."""
    if multilabel:
        prop: dict[str, Any] = {"type": "array", "items": {"type": "string", "enum": labels}}
        key = "labels"
    else:
        prop, key = {"type": "string", "enum": labels}, "label"
    return {"type": "object", "properties": {key: prop}, "required": [key], "additionalProperties": False}
