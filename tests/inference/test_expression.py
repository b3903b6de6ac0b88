"""Derived VA from the FER2013 mini-Xception: real model on the sample faces, anchors, vision-only labels."""
from __future__ import annotations

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from inference import faces
from inference.models import BASIC_LABELS
from inference.va import expression
from inference.va.norms import word_norms_load
from tests.conftest import ASSETS, FACES, unshipped_asset

WARRINER = ASSETS / "warriner-vad-norms" / "Ratings_Warriner_et_al.csv"
NAMES = ["obama.jpg", "astronaut.png", "biden.jpg", "obama-speech.jpg"]
# The Pexels photos of ../shared/assets/faces (not redistributable): the sad, angry and surprised faces.
PEXELS = ["sad-baby.jpeg", "angry.jpg", "surprised.jpeg", "neutral.jpeg", "happy-baby.jpeg"]


def _predict(paths: list) -> list[expression.ExpressionResult]:
    loaded = expression.expression_load(norms_path=str(WARRINER))
    detector = faces.face_detector_load("yunet")
    crops = []
    for path in paths:
        image = faces.image_decode(path.read_bytes())
        crops.append(expression.expression_preprocess(image, faces.faces_detect(image, detector=detector).box.as_list()))
    return expression.expression_predict(loaded, np.stack(crops))


@pytest.fixture(scope="module")
def results() -> dict[str, expression.ExpressionResult]:
    return dict(zip(NAMES, _predict([FACES / name for name in NAMES]), strict=True))


def test_it_gives_smiling_faces_positive_and_serious_faces_negative_valence(results) -> None:
    for name in ("obama.jpg", "astronaut.png"):
        assert results[name].valence > 0.3, name
    # Mostly neutral with some anger and sadness (biden), anger over a smile (obama-speech): the anchors of
    # "angry" and "sad" pull valence below zero.
    for name in ("biden.jpg", "obama-speech.jpg"):
        assert results[name].valence < -0.1, name
    assert results["obama-speech.jpg"].arousal > 0.1  # "angry" is a high-arousal word in Warriner


def test_it_predicts_the_basic_label_of_each_shipped_face(results) -> None:
    expected = {"obama.jpg": "happiness", "astronaut.png": "happiness", "biden.jpg": "neutral",
                "obama-speech.jpg": "anger"}  # the asset README's top-1: angry 0.50, happy 0.33 for the speech
    assert {name: r.predicted_label for name, r in results.items()} == expected


def test_it_predicts_the_basic_label_seen_by_eye_on_the_pexels_faces() -> None:
    paths = [unshipped_asset(f"faces/{name}", "Pexels' terms forbid redistributing the photos") for name in PEXELS]
    found = {name: r for name, r in zip(PEXELS, _predict(paths), strict=True)}
    assert {name: r.predicted_label for name, r in found.items()} == {
        "sad-baby.jpeg": "sadness", "surprised.jpeg": "surprise", "neutral.jpeg": "neutral",
        "happy-baby.jpeg": "happiness",
        "angry.jpg": "disgust"}  # the asset README's top-1 for the grimace is disgust 0.75, angry 0.19
    for name in ("sad-baby.jpeg", "angry.jpg"):
        assert found[name].valence < -0.2, name
    assert found["sad-baby.jpeg"].arousal < 0  # "sad" is a low-arousal word in Warriner


def test_it_stores_probabilities_and_labels_itself_derived(results) -> None:
    details = results["obama.jpg"].details()
    assert details["derived"] is True
    assert list(details["probabilities"]) == list(expression.FER_CLASSES)
    assert sum(details["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert details["fer_class"] == "happy" and details["predicted_label_set"] == "basic"
    assert details["predicted_probability"] > 0.9


def test_it_maps_every_fer_class_to_a_dataset_basic_label() -> None:
    assert sorted(expression.FER_TO_BASIC.values()) == sorted(BASIC_LABELS)


def test_it_takes_anchors_from_the_norm_words_and_puts_neutral_at_the_origin(tmp_path) -> None:
    # NRC VAD may not be redistributed: a file in its format, with NRC's published values for happy and angry;
    # the other anchor words only need to be present (their values are not asserted).
    nrc_path = tmp_path / "NRC-VAD-Lexicon.txt"
    nrc_path.write_text("angry\t0.122\t0.830\t0.604\ndisgusted\t0.051\t0.773\t0.274\nhappy\t1.000\t0.735\t0.772\n"
                        "sad\t0.225\t0.333\t0.149\nscared\t0.115\t0.843\t0.248\nsurprised\t0.784\t0.855\t0.539\n")
    warriner, nrc = word_norms_load(str(WARRINER)), word_norms_load(str(nrc_path))
    anchors = expression.expression_anchors(warriner)
    happy = expression.FER_CLASSES.index("happy")
    assert (anchors.valence[happy], anchors.arousal[happy]) == pytest.approx(((8.47 - 5) / 4, (6.05 - 5) / 4))
    neutral = expression.FER_CLASSES.index("neutral")
    assert (anchors.valence[neutral], anchors.arousal[neutral]) == (0.0, 0.0)
    nrc_anchors = expression.expression_anchors(nrc)
    assert nrc_anchors.valence[happy] == pytest.approx(1.0) and nrc_anchors.norms_source == "nrc"
    details = anchors.details()
    assert details["norms"] == "warriner" and details["norms_sha256"] == warriner.sha256
    assert details["anchors"]["fear"]["word"] == "scared"


def test_it_weights_the_anchors_by_probability() -> None:
    anchors = expression.expression_anchors(word_norms_load(str(WARRINER)))
    one_hot = np.eye(7, dtype=np.float32)
    va = expression.expression_va(one_hot, anchors)
    assert va[:, 0] == pytest.approx(anchors.valence) and va[:, 1] == pytest.approx(anchors.arousal)
    uniform = expression.expression_va(np.full((1, 7), 1 / 7, np.float32), anchors)
    assert uniform[0] == pytest.approx([anchors.valence.mean(), anchors.arousal.mean()], abs=1e-6)
    half = np.zeros((1, 7), np.float32)
    half[0, expression.FER_CLASSES.index("happy")] = half[0, expression.FER_CLASSES.index("sad")] = 0.5
    assert expression.expression_va(half, anchors)[0, 0] == pytest.approx((0.8675 - 0.725) / 2, abs=1e-6)


def test_it_rejects_a_norm_without_an_anchor_word(tmp_path) -> None:
    path = tmp_path / "tiny-nrc.txt"
    path.write_text("happy\t1.0\t0.7\t0.7\nsad\t0.2\t0.3\t0.3\n")
    with pytest.raises(ValueError, match="no entry for 'angry'"):
        expression.expression_anchors(word_norms_load(str(path)))


def test_it_crops_a_square_with_margin_and_replicates_the_border() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    image[:, :50] = 255  # left half white
    face = expression.expression_preprocess(image, [0, 0, 40, 20])  # square of 60 px centred on (20, 10)
    assert face.shape == (64, 64, 1) and face.dtype == np.float32
    assert face.min() >= -1.0 and face.max() <= 1.0
    assert face[0, 0, 0] == pytest.approx(1.0)  # padding above/left repeats the white edge
    assert face[32, -1, 0] == pytest.approx(1.0)  # the crop ends at x = 50, still white
    with pytest.raises(ValueError, match="empty"):
        expression.expression_preprocess(image, [10, 10, 0, 5])


def test_it_loads_the_classifier_once_per_process() -> None:
    assert expression.expression_model_load() is expression.expression_model_load()
    assert expression.expression_model_load().sha256 == (
        "2d0c657f0e8a2c435f7e5e28d191ec6bf73da7588af0b29e623e6577c16798b6")


@pytest.mark.parametrize("value", ["", "   "])
def test_it_names_the_setting_when_the_model_is_not_configured(settings, value: str) -> None:
    settings.EXPRESSION_MODEL = value
    with pytest.raises(ImproperlyConfigured, match="EXPRESSION_MODEL"):
        expression.expression_load()


def test_it_names_the_setting_when_the_model_file_is_missing(settings, tmp_path) -> None:
    settings.EXPRESSION_MODEL = str(tmp_path / "missing.onnx")
    with pytest.raises(ImproperlyConfigured, match="EXPRESSION_MODEL=.*missing.onnx"):
        expression.expression_model_load()


@pytest.mark.parametrize("wrong", ["garbage", "yunet"])
def test_it_rejects_a_file_that_is_not_the_expression_classifier(settings, tmp_path, wrong: str) -> None:
    if wrong == "garbage":
        path = tmp_path / "model.onnx"
        path.write_bytes(b"\x08\x07 not an onnx graph")
    else:
        path = ASSETS / "yunet-face-detector" / "face_detection_yunet_2026may.onnx"
    with pytest.raises(ImproperlyConfigured, match="EXPRESSION_MODEL="):
        expression.expression_model_load(str(path))
