"""VA service: the shipped sample faces through the real detector and models."""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from inference.models import Batch, Dataset, Sample, VAEstimate
from inference.services.batches import BatchInvalid, batch_queue, batch_run_inline
from inference.services.va import va_extract_samples
from tests.conftest import FACES, group_photo, group_photo_jpeg
from tests.inference.facechannel_files import facechannel_h5_write

EXPRESSION_SHA256 = "2d0c657f0e8a2c435f7e5e28d191ec6bf73da7588af0b29e623e6577c16798b6"


def sample_create(dataset: Dataset, external_id: str, data: bytes, ext: str, **fields: object) -> Sample:
    """A Sample stored the way the importer stores it: content-addressed under samples/."""
    sha = hashlib.sha256(data).hexdigest()
    name = default_storage.save(f"samples/{sha[:2]}/{sha}.{ext}", ContentFile(data))
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    height, width = image.shape[:2] if image is not None else (1, 1)
    return Sample.objects.create(dataset=dataset, external_id=external_id, image=name, image_sha256=sha,
                                 width=width, height=height, **fields)


def face_sample(dataset: Dataset, filename: str, **fields: object) -> Sample:
    path = FACES / filename
    return sample_create(dataset, Path(filename).stem, path.read_bytes(), path.suffix.lstrip("."), **fields)


def png_bytes(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


@pytest.fixture
def dataset(db) -> Dataset:
    return Dataset.objects.create(name="faces", format=Dataset.Format.FOLDER)


def test_it_derives_expression_va_with_the_sign_the_faces_show(dataset) -> None:
    names = ["obama.jpg", "astronaut.png", "biden.jpg", "obama-speech.jpg"]
    samples = {name: face_sample(dataset, name) for name in names}
    report = va_extract_samples(sample_ids=[s.pk for s in samples.values()], source="expression")
    assert report == {"done": 4, "failed": 0, "no_face": 0, "errors": {}}
    rows = {name: VAEstimate.objects.get(sample=s, source="expression") for name, s in samples.items()}
    for name in ("obama.jpg", "astronaut.png"):
        assert rows[name].valence > 0.3, name
        assert rows[name].details["predicted_label"] == "happiness"
    for name in ("biden.jpg", "obama-speech.jpg"):  # serious faces with some anger or sadness
        assert rows[name].valence < -0.1, name
    assert rows["obama-speech.jpg"].details["predicted_label"] == "anger"
    row = rows["obama.jpg"]
    assert row.status == VAEstimate.Status.OK and row.model_sha256 == EXPRESSION_SHA256
    assert row.details["derived"] is True and row.details["norms"] == "warriner"
    assert sum(row.details["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert row.detector == "yunet" and row.face_count == 1 and row.face_score > 0.7
    assert -1 <= row.arousal <= 1


def test_it_keeps_every_face_and_chooses_the_largest(dataset) -> None:
    sample = sample_create(dataset, "group", group_photo_jpeg(), "jpg")
    va_extract_samples(sample_ids=[sample.pk], source="expression")
    row = VAEstimate.objects.get(sample=sample)
    boxes = row.details["boxes"]
    assert row.face_count == len(boxes) == 4
    assert row.face_box == max(boxes, key=lambda b: b[2] * b[3])
    assert row.details["chosen"] == boxes.index(row.face_box)


def test_it_detects_inside_the_body_box(dataset) -> None:
    body = group_photo()[1][1]  # the second person's tile, as Emotic would box them
    sample = sample_create(dataset, "group", group_photo_jpeg(), "jpg", body_box=body)
    va_extract_samples(sample_ids=[sample.pk], source="expression")
    row = VAEstimate.objects.get(sample=sample)
    x, y, w, h = row.face_box
    assert row.face_count == 1
    assert body[0] <= x and x + w <= body[0] + body[2] and body[1] <= y and y + h <= body[1] + body[3]
    assert row.details["region"] == body


def test_it_records_no_face_as_an_outcome(dataset) -> None:
    blank = sample_create(dataset, "blank", png_bytes(np.full((240, 320, 3), 128, np.uint8)), "png")
    report = va_extract_samples(sample_ids=[blank.pk], source="expression")
    row = VAEstimate.objects.get(sample=blank)
    assert report == {"done": 1, "failed": 0, "no_face": 1, "errors": {}}
    assert row.status == VAEstimate.Status.NO_FACE and row.valence is None and row.face_count == 0


def test_it_uses_the_whole_frame_when_the_fallback_is_on(dataset, settings) -> None:
    settings.FACE_WHOLE_FRAME_FALLBACK = True
    blank = sample_create(dataset, "blank", png_bytes(np.full((240, 320, 3), 128, np.uint8)), "png")
    va_extract_samples(sample_ids=[blank.pk], source="expression")
    row = VAEstimate.objects.get(sample=blank)
    assert row.status == VAEstimate.Status.OK and row.valence is not None
    assert row.face_box == [0, 0, 320, 240] and row.details["whole_frame_fallback"] is True


def test_it_records_bad_samples_as_errors_and_finishes_the_rest(dataset) -> None:
    good = face_sample(dataset, "astronaut.png")
    garbage = sample_create(dataset, "garbage", b"this is not an image", "jpg")
    truncated = sample_create(dataset, "truncated", (FACES / "obama.jpg").read_bytes()[:200], "jpg")
    zero_box = face_sample(dataset, "obama.jpg", body_box=[100, 100, 0, 50])
    outside_box = face_sample(dataset, "biden.jpg", body_box=[5000, 5000, 10, 10])
    lost = face_sample(dataset, "obama-speech.jpg")
    default_storage.delete(lost.image.name)
    ids = [garbage.pk, good.pk, truncated.pk, zero_box.pk, outside_box.pk, lost.pk, 999_999]
    report = va_extract_samples(sample_ids=ids, source="expression")
    assert report["done"] == 1 and report["failed"] == 6
    assert set(report["errors"]) == {garbage.pk, truncated.pk, zero_box.pk, outside_box.pk, lost.pk, 999_999}
    assert "cannot be decoded" in report["errors"][garbage.pk]
    assert "zero size" in report["errors"][zero_box.pk]
    assert "cannot be read" in report["errors"][lost.pk]
    assert "does not exist" in report["errors"][999_999]
    assert VAEstimate.objects.get(sample=good).status == VAEstimate.Status.OK
    errors = VAEstimate.objects.filter(status=VAEstimate.Status.ERROR)
    assert errors.count() == 5 and all(row.error for row in errors)


@pytest.mark.parametrize("kind", ["gray", "rgba", "16bit"])
def test_it_reads_grayscale_rgba_and_16bit_images(dataset, kind: str) -> None:
    bgr = cv2.imread(str(FACES / "obama.jpg"))
    image = {"gray": cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), "rgba": cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA),
             "16bit": bgr.astype(np.uint16) * 257}[kind]
    sample = sample_create(dataset, kind, png_bytes(image), "png")
    va_extract_samples(sample_ids=[sample.pk], source="expression")
    row = VAEstimate.objects.get(sample=sample)
    assert row.status == VAEstimate.Status.OK and row.valence > 0.3


def test_it_upserts_on_a_rerun_instead_of_duplicating(dataset) -> None:
    sample = face_sample(dataset, "obama.jpg")
    va_extract_samples(sample_ids=[sample.pk], source="expression")
    first = VAEstimate.objects.get(sample=sample)
    va_extract_samples(sample_ids=[sample.pk, sample.pk], source="expression")
    assert list(VAEstimate.objects.values_list("id", flat=True)) == [first.pk]


def test_it_copies_dataset_ground_truth_and_reports_samples_without_it(dataset) -> None:
    with_gt = face_sample(dataset, "obama.jpg", gt_valence=0.5, gt_arousal=-0.25, gt_dominance=0.1)
    without = face_sample(dataset, "biden.jpg")
    report = va_extract_samples(sample_ids=[with_gt.pk, without.pk], source="dataset")
    assert report["done"] == 1 and report["failed"] == 1
    assert "no ground-truth" in report["errors"][without.pk]
    row = VAEstimate.objects.get(sample=with_gt, source="dataset")
    assert (row.valence, row.arousal, row.model_sha256) == (0.5, -0.25, "dataset")
    assert row.details["derived"] is False
    assert VAEstimate.objects.get(sample=without).status == VAEstimate.Status.ERROR


@pytest.mark.parametrize("value", [7.0, float("nan")])
def test_it_rejects_ground_truth_off_the_minus_one_one_scale(dataset, value: float) -> None:
    sample = face_sample(dataset, "obama.jpg", gt_valence=value, gt_arousal=0.0)
    report = va_extract_samples(sample_ids=[sample.pk], source="dataset")
    assert "outside [-1, 1]" in report["errors"][sample.pk]
    assert VAEstimate.objects.get(sample=sample).valence is None


def test_it_runs_the_facechannel_port_and_records_the_weights_version(dataset, settings, tmp_path) -> None:
    weights = facechannel_h5_write(tmp_path / "facechannel_dim_seeded.h5")
    settings.FACECHANNEL_WEIGHTS = str(weights)
    samples = [face_sample(dataset, name) for name in ("obama.jpg", "biden.jpg")]
    report = va_extract_samples(sample_ids=[s.pk for s in samples], source="facechannel")
    assert report["done"] == 2
    rows = VAEstimate.objects.filter(source="facechannel")
    assert {r.model_sha256 for r in rows} == {hashlib.sha256(weights.read_bytes()).hexdigest()}
    for row in rows:
        assert -1 <= row.valence <= 1 and -1 <= row.arousal <= 1
        assert row.details["derived"] is False and row.details["weights_official_blob_match"] is False


def test_it_refuses_facechannel_without_weights_naming_the_setting(dataset, settings) -> None:
    settings.FACECHANNEL_WEIGHTS = ""
    sample = face_sample(dataset, "obama.jpg")
    with pytest.raises(ImproperlyConfigured, match="FACECHANNEL_WEIGHTS"):
        va_extract_samples(sample_ids=[sample.pk], source="facechannel")
    assert not VAEstimate.objects.exists()


def test_it_refuses_a_weights_file_of_another_model(dataset, settings, tmp_path) -> None:
    other = tmp_path / "another-model.h5"
    facechannel_h5_write(other)
    with h5py.File(other, "r+") as handle:  # the same file with a categorical head instead of arousal
        handle.attrs["model_config"] = handle.attrs["model_config"].replace('"units": 1, "activation": "tanh"',
                                                                            '"units": 8, "activation": "softmax"', 1)
    settings.FACECHANNEL_WEIGHTS = str(other)
    sample = face_sample(dataset, "obama.jpg")
    with pytest.raises(ValueError, match="not a FaceChannelV1"):
        va_extract_samples(sample_ids=[sample.pk], source="facechannel")
    assert not VAEstimate.objects.exists()


def test_it_refuses_a_missing_expression_model_naming_the_setting(dataset, settings) -> None:
    settings.EXPRESSION_MODEL = ""
    sample = face_sample(dataset, "obama.jpg")
    with pytest.raises(ImproperlyConfigured, match="EXPRESSION_MODEL"):
        va_extract_samples(sample_ids=[sample.pk], source="expression")
    assert not VAEstimate.objects.exists()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sample_ids": [1], "source": "magic"}, "unknown VA source"),
    ({"sample_ids": "1,2", "source": "dataset"}, "list of integers"),
    ({"sample_ids": [1, "2"], "source": "dataset"}, "list of integers"),
    ({"sample_ids": [True], "source": "dataset"}, "list of integers"),
])
def test_it_rejects_a_malformed_request(db, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        va_extract_samples(**kwargs)


def test_it_extracts_a_whole_dataset_in_chunks_with_progress(dataset) -> None:
    samples = [face_sample(dataset, name, gt_valence=0.1 * i, gt_arousal=0.0)
               for i, name in enumerate(["obama.jpg", "biden.jpg", "astronaut.png"])]
    batch = batch_queue(dataset=dataset, stages=["va"], va_source="dataset", chunk_size=2, inline=True)
    seen: list[int] = []
    batch = batch_run_inline(batch_id=batch.pk, progress=lambda b: seen.append(b.done))
    assert seen == [0, 2, 3]  # after each chunk
    assert (batch.status, batch.done, batch.failed) == ("succeeded", 3, 0)
    assert VAEstimate.objects.filter(sample__in=samples, status="ok").count() == 3


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"va_source": "telepathy"}, "unknown VA source"),
    ({"chunk_size": 0}, "chunk size must be an integer from 1"),
])
def test_it_rejects_a_bad_dataset_request(dataset, kwargs: dict, message: str) -> None:
    face_sample(dataset, "obama.jpg")
    with pytest.raises(BatchInvalid, match=message):
        batch_queue(dataset=dataset, stages=["va"], **{"va_source": "dataset", "chunk_size": 2, **kwargs})
    assert not Batch.objects.exists()
