"""Strict parsing of model answers against the label set; flags for empty or refusing descriptions.

Categorization: a JSON answer ({"label": ...} / {"labels": [...]}, as the structured-output backends
produce) is read first; otherwise a bare answer such as "Happy." or "anger, fear" is accepted. Each
label must then be in the set, up to case and common synonyms ("happy" -> happiness). Anything else
(a label outside the set, prose naming several emotions, two labels for a single-label task) is
`unparseable`, with the reason; the raw text is always kept by the caller. Nothing is ever guessed.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from inference.importers.base import normalize_label

OK = "ok"
UNPARSEABLE = "unparseable"
FLAGGED = "flagged"

# Adjective and alternative forms a model uses for a category name; a synonym only counts when its
# target is in the prompt's label set. (The importer's table already maps the basic-emotion spellings.)
SYNONYMS = {
    "happy": "happiness", "joy": "happiness", "joyful": "happiness", "sad": "sadness", "angry": "anger",
    "mad": "anger", "afraid": "fear", "scared": "fear", "fearful": "fear", "surprised": "surprise",
    "disgusted": "disgust", "excited": "excitement", "tired": "fatigue", "fatigued": "fatigue",
    "exhausted": "fatigue", "confused": "doubt/confusion", "confusion": "doubt/confusion",
    "doubt": "doubt/confusion", "doubtful": "doubt/confusion", "embarrassed": "embarrassment",
    "engaged": "engagement", "confident": "confidence", "annoyed": "annoyance", "peaceful": "peace",
    "disconnected": "disconnection", "affectionate": "affection", "disapproving": "disapproval",
    "sympathetic": "sympathy", "pained": "pain", "in pain": "pain", "anticipating": "anticipation",
    "sensitive": "sensitivity", "suffering": "suffering", "yearning": "yearning", "pleased": "pleasure",
    "disquieted": "disquietment", "uneasy": "disquietment",
}
_PREFIX = re.compile(
    r"^(?:(?:the\s+)?(?:answer|label|labels|category|categories|emotion|emotions)\s*(?:is|are|:)\s*)", re.I
)
_REFUSAL = re.compile(
    r"^\s*(?:i'm sorry|i am sorry|sorry\b|i apologi[sz]e|i can(?:no|')t\b|i am (?:not able|unable)|"
    r"i'm (?:not able|unable)|i (?:do not|don't) (?:have the ability|feel comfortable))"
    r"|\bas an ai\b|\bas a (?:large )?(?:language model|chatbot|ai(?: assistant)?)\b",
    re.I,
)
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.I)


@dataclass(frozen=True)
class ParsedLabels:
    status: str
    labels: list[str] = field(default_factory=list)
    reason: str = ""


@dataclass(frozen=True)
class CheckedText:
    status: str
    text: str
    reason: str = ""


def label_match(raw: str, labels: list[str]) -> str | None:
    """The label of the set `raw` names (case, synonyms), or None."""
    text = raw.strip().strip("\"'`*_.!").strip()
    found = normalize_label(text, labels)
    if found is not None:
        return found
    by_lower = {label.lower(): label for label in labels}
    lower = text.lower()
    return by_lower.get(lower) or by_lower.get(SYNONYMS.get(lower, ""))


def _json_candidates(text: str) -> list[str] | None:
    """Label strings from a JSON answer; None when the answer is not JSON at all."""
    body = _FENCE.sub("", text.strip())
    start, end = body.find("{"), body.rfind("}")
    try:
        data = json.loads(body[start:end + 1] if 0 <= start < end else body)
    except ValueError:
        return None
    if isinstance(data, dict):
        for key in ("labels", "label", "categories", "category", "emotions", "emotion"):
            if key in data:
                data = data[key]
                break
        else:
            return []
    if isinstance(data, str):
        return [data]
    if isinstance(data, list) and all(isinstance(item, str) for item in data):
        return list(data)
    return []


def _text_candidates(text: str, multilabel: bool) -> list[str]:
    body = _PREFIX.sub("", text.strip().strip("*_`").strip())
    if not multilabel:
        return [body]
    return [part for part in re.split(r"\s*(?:,|;|\n|\band\b)\s*", body) if part.strip()]


def categorize_parse(*, raw: str, labels: list[str], multilabel: bool) -> ParsedLabels:
    text = raw.strip()
    if not text:
        return ParsedLabels(UNPARSEABLE, reason="empty answer")
    if _REFUSAL.search(text):
        return ParsedLabels(UNPARSEABLE, reason="refusal-like answer")
    candidates = _json_candidates(text)
    if candidates is None:
        candidates = _text_candidates(text, multilabel)
    if not candidates:
        return ParsedLabels(UNPARSEABLE, reason="no label found in the answer")
    found: list[str] = []
    for candidate in candidates:
        label = label_match(candidate, labels)
        if label is None:
            shown = candidate.strip()[:60]
            return ParsedLabels(UNPARSEABLE, reason=f"{shown!r} is not a label of the set")
        if label not in found:
            found.append(label)
    if not multilabel and len(found) > 1:
        return ParsedLabels(UNPARSEABLE, reason=f"{len(found)} labels for a single-label task: {', '.join(found)}")
    return ParsedLabels(OK, labels=found)


def description_check(*, raw: str) -> CheckedText:
    text = raw.strip()
    try:
        # A backend asked for plain text may still wrap it as {"description": "..."}.
        data = json.loads(_FENCE.sub("", text)) if text.startswith(("{", "```")) else None
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("description"), str):
        text = data["description"].strip()
    text = re.sub(r"^(?:description\s*:\s*)", "", text, flags=re.I).strip().strip('"').strip()
    if not text:
        return CheckedText(FLAGGED, "", "empty answer")
    if _REFUSAL.search(text):
        return CheckedText(FLAGGED, text, "refusal-like answer")
    return CheckedText(OK, text)
