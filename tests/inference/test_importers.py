"""Dataset import: every format, idempotency, and every kind of bad input the issue lists."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image
from scipy.io import savemat

from inference.models import Dataset, Sample
from inference.services.imports import ImportFailed, dataset_import
from tests.conftest import FACES

pytestmark = pytest.mark.django_db


def _png(path: Path, size: tuple[int, int] = (32, 32), color: int = 128, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def _reasons(report) -> list[str]:
    return [str(e) for e in report.errors]


def test_it_imports_the_demo_manifest_with_references(tmp_path) -> None:
    report = dataset_import(path=FACES / "demo-manifest.csv", name="demo", fmt="manifest")
    assert (report.created, report.errors) == (4, [])
    sample = Sample.objects.get(dataset__name="demo", external_id="obama.jpg")
    assert sample.labels == ["happiness"]
    assert sample.references[0].startswith("He gives a broad, friendly smile")
    assert (sample.width, sample.height) == (910, 1137)
    assert sample.image.name == f"samples/{sample.image_sha256[:2]}/{sample.image_sha256}.jpg"


def test_it_changes_nothing_when_rerun(tmp_path) -> None:
    dataset_import(path=FACES / "demo-manifest.csv", name="demo", fmt="manifest")
    ids = list(Sample.objects.order_by("id").values_list("id", flat=True))
    report = dataset_import(path=FACES / "demo-manifest.csv", name="demo", fmt="manifest")
    assert (report.created, report.updated, report.unchanged) == (0, 0, 4)
    assert list(Sample.objects.order_by("id").values_list("id", flat=True)) == ids


def test_it_updates_a_changed_row_in_place(tmp_path) -> None:
    shutil.copy(FACES / "astronaut.png", tmp_path / "a.png")
    manifest = tmp_path / "m.csv"
    manifest.write_text("image,label,reference_description\na.png,happiness,She smiles.\n")
    dataset_import(path=manifest, name="m", fmt="manifest")
    manifest.write_text("image,label,reference_description\na.png,neutral,She looks calm.\n")
    report = dataset_import(path=manifest, name="m", fmt="manifest")
    assert report.updated == 1
    sample = Sample.objects.get()
    assert (sample.labels, sample.references) == (["neutral"], ["She looks calm."])


def test_it_imports_jsonl_with_several_references_and_va(tmp_path) -> None:
    shutil.copy(FACES / "obama.jpg", tmp_path / "o.jpg")
    lines = [
        {"image": "o.jpg", "labels": ["happy"], "valence": 0.8, "arousal": 0.3,
         "references": ["He smiles.", "A broad grin."]},
        {"image": "o.jpg", "labels": ["happy"]},  # duplicate row
        "not an object",
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n")
    report = dataset_import(path=manifest, name="j", fmt="manifest")
    sample = Sample.objects.get()
    assert (sample.gt_valence, sample.gt_arousal, sample.references) == (0.8, 0.3, ["He smiles.", "A broad grin."])
    reasons = _reasons(report)
    assert any("m.jsonl:2" in r and "duplicate of m.jsonl:1" in r for r in reasons)
    assert any("m.jsonl:3" in r and "object" in r for r in reasons)
    assert any("m.jsonl:4" in r and "invalid JSON" in r for r in reasons)


def test_it_imports_folder_per_class_and_reports_unknown_classes(tmp_path) -> None:
    root = tmp_path / "fer"
    _png(root / "happy" / "1.png", color=10)
    _png(root / "sad" / "2.png", color=20)
    _png(root / "bored" / "3.png", color=30)
    (root / "happy" / "notes.txt").write_text("hello")
    report = dataset_import(path=root, name="fer", fmt="folder")
    assert sorted(Sample.objects.values_list("external_id", "labels")) == [
        ("happy/1.png", ["happiness"]), ("sad/2.png", ["sadness"])]
    reasons = _reasons(report)
    assert any("'bored' is not a label" in r for r in reasons)
    assert any("happy/notes.txt" in r and "not an image" in r for r in reasons)


EMOTIC_HEADER = "Folder,Filename,Image Size,BBox,Categorical_Labels,Continuous_Labels,Gender,Age\n"


def test_it_imports_emotic_csv_with_body_boxes_and_scaled_vad(tmp_path) -> None:
    (tmp_path / "images").mkdir()
    # Any image of at least 760 x 240 px serves: the boxes are checked against its size only.
    shutil.copy(FACES / "obama.jpg", tmp_path / "images" / "group.jpeg")
    csv_path = tmp_path / "annot_arrs_train.csv"
    csv_path.write_text(
        EMOTIC_HEADER
        + "images,group.jpeg,\"[1280, 853]\",\"[300, 10, 460, 170]\",\"['Engagement', 'Peace']\",\"[10, 1, 5.5]\",Male,Adult\n"
        + "images,group.jpeg,\"[1280, 853]\",\"[600, 90, 760, 240]\",\"['Happiness']\",\"[7, 4, 6]\",Female,Adult\n"
        + "images,group.jpeg,\"[1280, 853]\",\"[600, 90, 760, 240]\",\"['Happiness']\",\"[7, 4, 6]\",Female,Adult\n"
        + "images,group.jpeg,\"[1280, 853]\",\"[1, 1, 50, 50]\",\"['Joyful']\",\"[7, 4, 6]\",Female,Adult\n"
        + "images,group.jpeg,\"[1280, 853]\",\"[1, 1, 60, 60]\",\"['Pain']\",\"[11, 4, 6]\",Female,Adult\n"
        + "images,group.jpeg,\"[1280, 853]\",\"[5, 5, 5, 60]\",\"['Pain']\",\"[3, 4, 6]\",Female,Adult\n"
        + "images,,\"[1280, 853]\",\"[1, 1, 70, 70]\",\"['Pain']\",\"[3, 4, 6]\",Female,Adult\n"
    )
    report = dataset_import(path=csv_path, name="emotic", fmt="emotic")
    dataset = Dataset.objects.get(name="emotic")
    assert dataset.multilabel and len(dataset.label_set) == 26
    first = Sample.objects.get(external_id="images/group.jpeg#300,10,460,170")
    assert first.labels == ["Engagement", "Peace"]
    assert first.body_box == [300, 10, 160, 160]
    assert (first.gt_valence, first.gt_arousal, first.gt_dominance) == (1.0, -1.0, 0.0)
    assert report.created == 2
    reasons = _reasons(report)
    assert any(":4" in r and "duplicate" in r for r in reasons)
    assert any(":5" in r and "'Joyful' is not one of Emotic's 26" in r for r in reasons)
    assert any(":6" in r and "valence 11 is outside Emotic's 1-10" in r for r in reasons)
    assert any(":7" in r and "zero or negative size" in r for r in reasons)
    assert any(":8" in r and "missing value in column(s) Filename" in r for r in reasons)


def test_it_reports_emotic_csv_cells_of_the_wrong_shape_per_row(tmp_path) -> None:
    """A bare number, None or a nested list was a TypeError, an infinite box an OverflowError: each ended
    the whole import; a set was read in no defined order and JSON-ish True taken as 1."""
    (tmp_path / "images").mkdir()
    shutil.copy(FACES / "obama.jpg", tmp_path / "images" / "a.jpeg")
    good = "images,a.jpeg,\"[1280, 853]\",\"[1, 1, 60, 60]\",\"['Peace']\",\"[5, 5, 5]\",Male,Adult\n"
    csv_path = tmp_path / "e.csv"
    csv_path.write_text(
        EMOTIC_HEADER + good
        + "images,a.jpeg,\"[1280, 853]\",\"[2, 2, 60, 60]\",5,\"[5, 5, 5]\",Male,Adult\n"
        + "images,a.jpeg,\"[1280, 853]\",\"[3, 3, 60, 60]\",\"['Peace']\",None,Male,Adult\n"
        + "images,a.jpeg,\"[1280, 853]\",\"[4, 4, 1e309, 60]\",\"['Peace']\",\"[5, 5, 5]\",Male,Adult\n"
        + "images,a.jpeg,\"[1280, 853]\",\"[5, 5, 60, 60]\",\"['Peace']\",\"[[5], 5, 5]\",Male,Adult\n"
        + "images,a.jpeg,\"[1280, 853]\",\"[6, 6, 60, 60]\",\"['Peace']\",\"{5, 6, 7}\",Male,Adult\n"
        + "images,a.jpeg,\"[1280, 853]\",\"[7, 7, 60, 60]\",\"['Peace']\",\"[True, 5, 5]\",Male,Adult\n"
        + f"images,a.jpeg,\"[1280, 853]\",\"[0, 0, {2**70}, 8]\",\"['Peace']\",\"[5, 5, 5]\",Male,Adult\n"
    )
    report = dataset_import(path=csv_path, name="emotic", fmt="emotic")
    assert report.created == 1
    reasons = _reasons(report)
    assert len(reasons) == 7
    assert "e.csv:3: column 'Categorical_Labels' is not a list literal: '5'" in reasons
    assert "e.csv:4: column 'Continuous_Labels' is not a list literal: 'None'" in reasons
    assert any(r.startswith("e.csv:5: body box") and "not finite" in r for r in reasons)
    assert "e.csv:6: column 'Continuous_Labels' must list numbers: '[[5], 5, 5]'" in reasons
    assert "e.csv:7: column 'Continuous_Labels' is not a list literal: '{5, 6, 7}'" in reasons
    assert "e.csv:8: column 'Continuous_Labels' must list numbers: '[True, 5, 5]'" in reasons
    assert any(r.startswith("e.csv:9: body box") and "beyond 1,000,000 pixels" in r for r in reasons)


def test_it_rejects_an_emotic_csv_without_the_required_columns(tmp_path) -> None:
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("Folder,Filename\nimages,a.jpg\n")
    report = dataset_import(path=csv_path, name="emotic", fmt="emotic")
    assert report.created == 0
    assert "missing column(s) BBox, Categorical_Labels, Continuous_Labels" in _reasons(report)[0]


def _mat_struct(**fields) -> np.ndarray:
    record = np.empty((1,), dtype=[(k, object) for k in fields])
    for key, value in fields.items():
        record[0][key] = value
    return record


def test_it_imports_the_original_emotic_annotations_mat(tmp_path) -> None:
    (tmp_path / "mscoco" / "images").mkdir(parents=True)
    shutil.copy(FACES / "obama.jpg", tmp_path / "mscoco" / "images" / "o.jpg")
    cont = _mat_struct(valence=8.0, arousal=6.0, dominance=7.0)
    cats = _mat_struct(categories=np.array(["Happiness", "Confidence"], dtype=object))
    person = _mat_struct(body_bbox=np.array([100.0, 50.0, 700.0, 1100.0]), annotations_categories=cats,
                         annotations_continuous=cont, gender="Male", age="Adult")
    bad_cont = _mat_struct(valence=0.0, arousal=6.0, dominance=7.0)
    bad_person = _mat_struct(body_bbox=np.array([10.0, 10.0, 90.0, 90.0]), annotations_categories=cats,
                             annotations_continuous=bad_cont, gender="Male", age="Adult")
    persons = np.empty((2,), dtype=object)
    persons[0], persons[1] = person, bad_person
    entry = _mat_struct(filename="o.jpg", folder="mscoco/images", image_size=_mat_struct(n_col=910, n_row=1137),
                        person=persons)
    savemat(tmp_path / "Annotations.mat", {"train": entry})
    report = dataset_import(path=tmp_path / "Annotations.mat", name="emotic-mat", fmt="emotic")
    sample = Sample.objects.get()
    assert sample.labels == ["Happiness", "Confidence"]
    assert sample.body_box == [100, 50, 600, 1050]
    assert sample.gt_valence == pytest.approx((8 - 5.5) / 4.5)
    assert sample.meta["split"] == "train"
    assert len(report.errors) == 1 and "valence 0 is outside" in str(report.errors[0])


def test_it_reports_a_file_that_is_not_matlab(tmp_path) -> None:
    bogus = tmp_path / "Annotations.mat"
    bogus.write_bytes(b"definitely not matlab")
    report = dataset_import(path=bogus, name="x", fmt="emotic")
    assert "not a readable MATLAB file" in _reasons(report)[0]


def test_it_reports_bad_images_and_keeps_the_good_rows(tmp_path, settings) -> None:
    settings.IMPORT_MAX_IMAGE_BYTES = 400_000
    settings.IMPORT_MAX_IMAGE_PIXELS = 2_000_000
    shutil.copy(FACES / "astronaut.png", tmp_path / "too-big.png")  # 791,555 bytes
    shutil.copy(FACES / "obama-speech.jpg", tmp_path / "good.jpg")
    (tmp_path / "text.jpg").write_text("this is not an image")
    (tmp_path / "truncated.jpg").write_bytes((FACES / "obama.jpg").read_bytes()[:5000])
    (tmp_path / "empty.png").write_bytes(b"")
    # A decompression bomb: a tiny PNG that declares a 3000x3000 canvas (9 Mpx > the 2 Mpx limit).
    buf = io.BytesIO()
    Image.new("1", (3000, 3000), 0).save(buf, format="PNG")
    assert len(buf.getvalue()) < 5000
    (tmp_path / "bomb.png").write_bytes(buf.getvalue())
    _png(tmp_path / "gray16.png", mode="I;16", color=40000)
    _png(tmp_path / "rgba.png", mode="RGBA", color=(10, 20, 30, 40))
    rows = ["too-big.png", "good.jpg", "text.jpg", "truncated.jpg", "empty.png", "bomb.png", "missing.jpg",
            "gray16.png", "rgba.png"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("image,label\n" + "".join(f"{r},neutral\n" for r in rows))
    report = dataset_import(path=manifest, name="bad-images", fmt="manifest")
    assert sorted(Sample.objects.values_list("external_id", flat=True)) == ["good.jpg", "gray16.png", "rgba.png"]
    by_line = {e.location: e.reason for e in report.errors}
    assert "over the 400000-byte limit" in by_line["m.csv:2"]
    assert "not a decodable image" in by_line["m.csv:4"]
    assert "corrupt image" in by_line["m.csv:5"] or "not a decodable" in by_line["m.csv:5"]
    assert "empty" in by_line["m.csv:6"]
    assert "decompression bomb" in by_line["m.csv:7"]
    assert "not found" in by_line["m.csv:8"]


def test_it_reports_csv_rows_with_missing_columns_labels_and_values(tmp_path) -> None:
    shutil.copy(FACES / "biden.jpg", tmp_path / "b.jpg")
    shutil.copy(FACES / "obama.jpg", tmp_path / "o.jpg")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "image,label,valence,arousal\n"
        "b.jpg,neutral,0.1,-0.2\n"
        "o.jpg,contemptuous,0.1,0.1\n"
        "o.jpg,happy,1.5,0.1\n"
        "o.jpg,happy,abc,0.1\n"
        "o.jpg,happy\n"
        ",happy,0,0\n"
        "o.jpg,happy;sad,0,0\n"
        "b.jpg,neutral,0.1,-0.2\n"
        "o.jpg,happy,0.5,0.1,extra\n"
    )
    report = dataset_import(path=manifest, name="m", fmt="manifest")
    assert report.created == 1
    by_line = {e.location: e.reason for e in report.errors}
    assert "'contemptuous' is not in the label set" in by_line["m.csv:3"]
    assert "valence 1.5 is outside [-1, 1]" in by_line["m.csv:4"]
    assert "'abc' is not a number" in by_line["m.csv:5"]
    assert "fewer cells" in by_line["m.csv:6"]
    assert "missing value in column 'image'" in by_line["m.csv:7"]
    assert "single-label" in by_line["m.csv:8"]
    assert "duplicate of m.csv:2" in by_line["m.csv:9"]
    assert "header has 4" in by_line["m.csv:10"]


def test_it_rejects_a_manifest_without_an_image_column(tmp_path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,label\na.jpg,happy\n")
    report = dataset_import(path=manifest, name="m", fmt="manifest")
    assert "missing required column 'image'" in _reasons(report)[0]


def test_it_refuses_a_missing_path_and_an_unknown_format(tmp_path) -> None:
    with pytest.raises(ImportFailed, match="path does not exist"):
        dataset_import(path=tmp_path / "nope.csv", name="x", fmt="manifest")
    with pytest.raises(ImportFailed, match="unknown format 'xml'"):
        dataset_import(path=FACES / "demo-manifest.csv", name="x", fmt="xml")
    assert not Dataset.objects.exists()


def test_it_refuses_to_mix_formats_under_one_name(tmp_path) -> None:
    dataset_import(path=FACES / "demo-manifest.csv", name="demo", fmt="manifest")
    with pytest.raises(ImportFailed, match="already exists with format 'manifest'"):
        dataset_import(path=tmp_path, name="demo", fmt="folder")


def test_the_command_prints_a_summary_and_row_errors(tmp_path, capsys) -> None:
    shutil.copy(FACES / "biden.jpg", tmp_path / "b.jpg")
    manifest = tmp_path / "m.csv"
    manifest.write_text("image,label\nb.jpg,neutral\nb.jpg,neutral\n")
    with pytest.raises(CommandError, match="1 row\\(s\\) failed"):  # a partial import exits non-zero
        call_command("import_dataset", str(manifest), "--name", "cmd", "--format", "manifest")
    out, err = capsys.readouterr()
    assert "dataset cmd: 1 created, 0 updated, 0 unchanged, 1 error(s)" in out
    assert "m.csv:3: duplicate of m.csv:2" in err


def test_the_command_fails_clearly_on_bad_arguments(tmp_path) -> None:
    with pytest.raises(CommandError, match="path does not exist"):
        call_command("import_dataset", str(tmp_path / "none"), "--name", "x", "--format", "folder")
    with pytest.raises(CommandError, match="unknown format"):
        call_command("import_dataset", str(tmp_path), "--name", "x", "--format", "zip")
    with pytest.raises(CommandError, match="must be a slug"):
        call_command("import_dataset", str(tmp_path), "--name", "has spaces", "--format", "folder")
    with pytest.raises(CommandError, match="at most 100"):  # was a DataError traceback
        call_command("import_dataset", str(tmp_path), "--name", "x" * 101, "--format", "folder")
    assert not Dataset.objects.exists()
