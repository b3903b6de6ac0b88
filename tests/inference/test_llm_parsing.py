"""Strict parsing of categorization answers and the description checks (no model, no database)."""
from __future__ import annotations

from inference.llm.parsing import categorization_parse, description_check, label_match
from inference.llm.prompts import answer_schema, prompt_render, va_words
from inference.models import BASIC_LABELS, EMOTIC_LABELS


def basic(raw: str):
    return categorization_parse(raw=raw, labels=BASIC_LABELS, multilabel=False)


def emotic(raw: str):
    return categorization_parse(raw=raw, labels=EMOTIC_LABELS, multilabel=True)


def test_it_reads_structured_json_answers():
    assert basic('{"label": "sadness"}').labels == ["sadness"]
    assert emotic('{"labels": ["Peace", "Happiness"]}').labels == ["Peace", "Happiness"]
    assert basic('```json\n{"label": "fear"}\n```').labels == ["fear"]


def test_it_maps_case_and_synonyms_to_the_label_set():
    assert basic('{"label": "Happy"}').labels == ["happiness"]
    assert basic("angry").labels == ["anger"]
    assert basic("The emotion is most likely surprise.").labels == ["surprise"]
    assert emotic("happy, confused").labels == ["Happiness", "Doubt/Confusion"]
    assert label_match("HAPPINESS", EMOTIC_LABELS) == "Happiness"


def test_it_never_guesses_a_label_outside_the_set():
    parsed = basic('{"label": "contempt"}')
    assert parsed.status == "unparseable" and parsed.labels == []
    assert "contempt" in parsed.reason
    assert emotic('{"labels": ["Peace", "Boredom"]}').status == "unparseable"


def test_it_marks_ambiguous_empty_and_malformed_answers_unparseable():
    assert basic("Not sad, rather happy.").status == "unparseable"  # two labels in prose
    assert basic('{"label": "happiness", "x": 1').labels == ["happiness"]  # truncated JSON, one clear label
    assert basic('{"label": "happi').status == "unparseable"
    assert basic("").reason == "empty answer"
    assert basic('{"label": 3}').status == "unparseable"
    assert basic("I'm sorry, I cannot determine emotions.").reason == "refusal-like answer"
    assert emotic("The person seems happy and maybe tired.").status == "unparseable"  # prose, multi-label


def test_it_marks_json_nested_past_the_recursion_limit_unparseable():
    # json.loads raised RecursionError, which escaped the parser and lost the answer.
    for raw in ("[" * 100_000, '{"label": ' + "[" * 100_000 + "}"):
        for parse in (basic, emotic):
            parsed = parse(raw)
            assert (parsed.status, parsed.reason) == ("unparseable", "JSON answer nested too deeply")


def test_it_flags_empty_and_refusal_descriptions():
    assert description_check(raw="  ").status == "flagged"
    refusal = description_check(raw="I'm sorry, but as an AI I can't describe faces.")
    assert refusal.status == "flagged" and refusal.reason == "refusal-like answer"
    ok = description_check(raw='Description: "A relaxed, gentle smile."')
    assert ok.status == "ok" and ok.text == "A relaxed, gentle smile."


def test_it_renders_va_as_numbers_or_words():
    assert va_words(valence=-0.2, arousal=0.8) == ("slightly negative valence", "very high arousal")
    assert va_words(valence=0.05, arousal=-0.5) == ("neutral valence", "moderately low arousal")
    text = prompt_render(text="V={valence} A={arousal} L={labels} {\"label\": x}", task="categorize",
                         va_format="numbers", valence=0.5, arousal=-0.25, labels=["anger", "fear"])
    assert text == 'V=+0.50 A=-0.25 L=anger, fear {"label": x}'


def test_it_builds_a_schema_that_only_admits_the_label_set():
    schema = answer_schema(labels=BASIC_LABELS, multilabel=False)
    assert schema["properties"]["label"]["enum"] == BASIC_LABELS
    assert answer_schema(labels=EMOTIC_LABELS, multilabel=True)["properties"]["labels"]["items"]["enum"] == EMOTIC_LABELS
