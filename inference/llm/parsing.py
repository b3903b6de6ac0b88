"""Strict parsing of model answers: a label from the set, or `unparseable` with the raw text kept.

Categorization: JSON first (what structured output produces), then a tolerant fallback for prose
("The emotion is happiness.") and near-misses of form (case, "happy" for happiness, "angry" for anger).
Only forms of the same word or the standard emotion-taxonomy synonym are mapped; anything else —
a label outside the set, two labels for a single-label task, nothing recognisable — is unparseable,
never guessed. Descriptions: cleaned of wrappers; empty or refusal-like answers are flagged.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

OK, UNPARSEABLE, FLAGGED = "ok", "unparseable", "flagged"

# Surface form -> concept (a lower-cased label, or one half of "Doubt/Confusion"). Used only when the
# concept is in the requested label set, so "happy" maps to "happiness" or "Happiness" as appropriate.
SYNONYMS = {
    "angry": "anger", "furious": "anger", "rage": "anger",
    "disgusted": "disgust", "disgusting": "disgust",
    "afraid": "fear", "scared": "fear", "fearful": "fear", "frightened": "fear", "terrified": "fear",
    "happy": "happiness", "joy": "happiness", "joyful": "happiness",
    "sad": "sadness",
    "surprised": "surprise", "astonished": "surprise", "astonishment": "surprise", "amazed": "surprise",
    "neutrality": "neutral",
    "affectionate": "affection", "annoyed": "annoyance", "averse": "aversion", "confident": "confidence",
    "disapproving": "disapproval", "disconnected": "disconnection", "disquiet": "disquietment",
    "disquieted": "disquietment", "doubtful": "doubt", "confused": "confusion", "embarrassed": "embarrassment",
    "engaged": "engagement", "excited": "excitement", "fatigued": "fatigue", "tired": "fatigue",
    "in pain": "pain", "peaceful": "peace", "pleased": "pleasure", "sensitive": "sensitivity",
    "suffer": "suffering", "sympathetic": "sympathy", "yearn": "yearning", "longing": "yearning",
}
LABEL_KEYS = ("label", "labels", "emotion", "emotions", "category", "categories", "answer")
REFUSAL = re.compile(
    r"^\s*(i'm sorry|i am sorry|sorry,|i can't|i cannot|i'm unable|i am unable|i'm not able|i am not able|"
    r"i won't|i will not|as an ai\b)|as an ai language model|i (?:cannot|can't) (?:help|assist|provide|determine|"
    r"describe|interpret)",
    re.IGNORECASE,
)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_STRIP = " \t\r\n.,;:!?\"'`*-•()[]"


@dataclass(frozen=True)
class Parsed:
    status: str
    labels: list[str] = field(default_factory=list)
    text: str = ""
    reason: str = ""


def _index(labels: list[str]) -> dict[str, str]:
    index: dict[str, str] = {}
    for label in labels:
        index.setdefault(label.lower(), label)
        for part in label.lower().split("/"):
            index.setdefault(part.strip(), label)
    for form, concept in SYNONYMS.items():
        if concept in index:
            index.setdefault(form, index[concept])
    return index


def label_match(candidate: str, labels: list[str]) -> str | None:
    """The label `candidate` names (case-insensitive, by form or synonym), or None."""
    return _index(labels).get(" ".join(candidate.replace("’", "'").strip(_STRIP).lower().split()))


def _normalise(raw: str) -> str:
    return _FENCE.sub("", raw.replace("’", "'").strip()).strip()


def _json_candidates(text: str) -> list[str] | str | None:
    """Label strings from a JSON answer; a str is the reason it is JSON but unusable; None = not JSON."""
    value: Any
    try:
        value = json.loads(text)
    except RecursionError:
        return "JSON answer nested too deeply"
    except ValueError:
        start, end = text.find("{"), text.rfind("}")
        if start == -1 or end <= start:
            return None
        try:
            value = json.loads(text[start:end + 1])
        except RecursionError:
            return "JSON answer nested too deeply"
        except ValueError:
            return None
    if isinstance(value, dict):
        lowered = {str(key).lower(): item for key, item in value.items()}
        key = next((key for key in LABEL_KEYS if key in lowered), None)
        if key is None:
            return f"JSON answer has none of the keys {', '.join(LABEL_KEYS[:2])}"
        value = lowered[key]
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return f"JSON answer holds {type(value).__name__}, not a label or a list of labels"


def _mentions(text: str, labels: list[str]) -> list[str]:
    found: list[str] = []
    lowered = text.lower()
    for form, label in _index(labels).items():
        if re.search(rf"(?<![\w-]){re.escape(form)}(?![\w-])", lowered) and label not in found:
            found.append(label)
    return found


def _finish(found: list[str | None], candidates: list[str], multilabel: bool) -> Parsed:
    unknown = [candidate for candidate, label in zip(candidates, found, strict=True) if label is None]
    if unknown:
        return Parsed(UNPARSEABLE, reason=f"label(s) outside the set: {', '.join(map(repr, unknown[:5]))}")
    distinct = list(dict.fromkeys(label for label in found if label is not None))
    if not distinct:
        return Parsed(UNPARSEABLE, reason="the answer names no label")
    if not multilabel and len(distinct) > 1:
        return Parsed(UNPARSEABLE, reason=f"several labels for a single-label task: {', '.join(distinct)}")
    return Parsed(OK, labels=distinct)


def categorization_parse(*, raw: str, labels: list[str], multilabel: bool) -> Parsed:
    text = _normalise(raw)
    if not text:
        return Parsed(UNPARSEABLE, reason="empty answer")
    candidates = _json_candidates(text)
    if isinstance(candidates, str):
        return Parsed(UNPARSEABLE, reason=candidates)
    if candidates is not None:
        return _finish([label_match(c, labels) for c in candidates], candidates, multilabel)
    if REFUSAL.search(text):
        return Parsed(UNPARSEABLE, reason="refusal-like answer")
    # Prose fallback: a bare list ("Happiness, Excitement") maps item by item...
    items = [item for item in re.split(r"[,;\n]|\band\b", text) if item.strip(_STRIP)]
    matched = [label_match(item, labels) for item in items]
    if items and all(matched):
        return _finish(matched, items, multilabel)
    # ...a sentence must name exactly one label, and only for single-label tasks: picking several
    # labels out of prose ("not sad but happy") would be guessing.
    if multilabel:
        return Parsed(UNPARSEABLE, reason="not JSON and not a plain list of labels")
    mentions = _mentions(text, labels)
    return _finish(list(mentions), list(mentions), multilabel)


def description_check(*, raw: str, refusal: bool = False) -> Parsed:
    text = _normalise(raw)
    text = re.sub(r"^(description|answer)\s*:\s*", "", text, flags=re.IGNORECASE).strip().strip('"').strip()
    if not text:
        return Parsed(FLAGGED, reason="empty answer")
    if refusal or REFUSAL.search(text):
        return Parsed(FLAGGED, text=text, reason="refusal-like answer")
    return Parsed(OK, text=text)
