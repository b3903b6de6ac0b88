"""The non-LLM baseline: emotion words of a word norm (Warriner / NRC VAD) nearest to the VA point.

Every LLM number is read against this. It ignores the prompt text and answers from geometry alone:
  categorize, single label -- the label whose norm (valence, arousal) is nearest (Euclidean) to the point;
  categorize, multi-label  -- that label plus any within LEXICON_MARGIN of its distance, at most
                              LEXICON_MAX_LABELS (Emotic people carry ~2 labels on average);
  describe                 -- a fixed sentence from the three nearest words of EMOTION_WORDS (adjectives
                              a person would use for a face), e.g. "The person looks calm, relaxed and
                              content." It is a template, not language generation.
Labels the norm lacks as a word are anchored on related lemmas (LABEL_ANCHORS), averaged.
The answer is returned as the same JSON/plain text an LLM would give, so it goes through the same
parser and lands in the same `Generation` rows.
"""
from __future__ import annotations

import json

import numpy as np

from inference.va.norms import WordNorms, word_norms_load

from .base import LLMReply, LLMRequest, PermanentLLMError

LEXICON_MARGIN = 0.15
LEXICON_MAX_LABELS = 3
DESCRIBE_WORDS = 3
LABEL_ANCHORS = {
    "doubt/confusion": ["doubt", "confusion"],
    "disconnection": ["disconnection", "disconnect", "detached"],
    "disquietment": ["disquietment", "disquiet", "uneasy"],
    "suffering": ["suffering", "suffer"],
    "yearning": ["yearning", "yearn"],
}
EMOTION_WORDS = (
    "happy joyful cheerful delighted elated excited enthusiastic euphoric content pleased satisfied calm "
    "relaxed serene peaceful tranquil sleepy tired bored weary gloomy sad unhappy miserable depressed lonely "
    "hopeless disappointed upset angry furious annoyed frustrated hostile afraid scared frightened fearful "
    "terrified anxious nervous worried tense disgusted ashamed embarrassed guilty surprised astonished "
    "amazed curious interested alert attentive confident proud hopeful affectionate tender grateful amused "
    "playful neutral indifferent thoughtful confused doubtful uneasy melancholy distressed detached"
).split()


class LexiconBackend:
    def __init__(self, *, norms_path: str = "") -> None:
        # Blank model field -> WORD_NORMS (word_norms_load raises ImproperlyConfigured naming it).
        self.norms: WordNorms = word_norms_load(norms_path.strip() or None)
        present = [(word, self.norms.get(word)) for word in EMOTION_WORDS]
        self.words = [word for word, vad in present if vad is not None]
        if len(self.words) < DESCRIBE_WORDS:
            raise PermanentLLMError(f"word norms {self.norms.path} hold too few emotion words for the baseline")
        self.word_va = np.array([vad[:2] for _, vad in present if vad is not None], dtype=np.float64)

    def label_point(self, label: str) -> tuple[float, float]:
        candidates = LABEL_ANCHORS.get(label.lower(), [label.lower()])
        found = [vad for vad in (self.norms.get(word) for word in candidates) if vad is not None]
        if not found:
            raise PermanentLLMError(
                f"word norms {self.norms.path} have no entry for label {label!r} (tried {', '.join(candidates)})"
            )
        return float(np.mean([v for v, _, _ in found])), float(np.mean([a for _, a, _ in found]))

    def nearest_labels(self, *, valence: float, arousal: float, labels: list[str], multilabel: bool) -> list[str]:
        points = np.array([self.label_point(label) for label in labels])
        distances = np.hypot(points[:, 0] - valence, points[:, 1] - arousal)
        order = np.argsort(distances, kind="stable")
        if not multilabel:
            return [labels[order[0]]]
        limit = distances[order[0]] + LEXICON_MARGIN
        return [labels[i] for i in order[:LEXICON_MAX_LABELS] if distances[i] <= limit]

    def nearest_words(self, *, valence: float, arousal: float, k: int = DESCRIBE_WORDS) -> list[str]:
        distances = np.hypot(self.word_va[:, 0] - valence, self.word_va[:, 1] - arousal)
        return [self.words[i] for i in np.argsort(distances, kind="stable")[:k]]

    def complete(self, request: LLMRequest) -> LLMReply:
        if request.task == "categorize":
            if not request.labels:
                raise PermanentLLMError("categorize needs a label set")
            chosen = self.nearest_labels(valence=request.valence, arousal=request.arousal, labels=request.labels,
                                         multilabel=request.multilabel)
            answer = {"labels": chosen} if request.multilabel else {"label": chosen[0]}
            return LLMReply(text=json.dumps(answer))
        first, second, third = self.nearest_words(valence=request.valence, arousal=request.arousal)
        return LLMReply(text=f"The person looks {first}, {second} and {third}.")
