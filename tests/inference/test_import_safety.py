"""Importer hardening: paths stay inside the dataset folder, and a manifest is read row by row."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from inference.models import Dataset, Sample
from inference.services.imports import dataset_import
from tests.conftest import FACES

pytestmark = pytest.mark.django_db


def _png(path: Path, color: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (16, 16), color).save(path)
    return path


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder next to the dataset with an image and a private file in it."""
    folder = tmp_path / "outside"
    _png(folder / "secret.png", color=7)
    (folder / "passwd").write_text("root:x:0:0\n")
    return folder


def test_it_refuses_manifest_paths_that_leave_the_dataset_folder(tmp_path, outside) -> None:
    data = tmp_path / "data"
    _png(data / "ok.png")
    os.symlink(outside / "secret.png", data / "linked.png")
    manifest = data / "m.csv"
    manifest.write_text("image,label\nok.png,happy\n../outside/secret.png,happy\n"
                        f"{outside / 'secret.png'},happy\n../../../../../../etc/passwd,happy\nlinked.png,happy\n")
    report = dataset_import(path=manifest, name="m", fmt="manifest")
    assert list(Sample.objects.values_list("external_id", flat=True)) == ["ok.png"]
    by_line = {e.location: e.reason for e in report.errors}
    assert "leaves the dataset folder" in by_line["m.csv:3"]
    assert "is absolute" in by_line["m.csv:4"]
    assert "leaves the dataset folder" in by_line["m.csv:5"]
    assert "through a symbolic link" in by_line["m.csv:6"]
    # Refused before anything is opened: no answer says whether the target exists or what it holds.
    assert not any(word in reason for reason in by_line.values() for word in ("not found", "decodable", "empty"))


def test_it_answers_the_same_whether_an_outside_file_exists_or_not(tmp_path, outside) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.symlink(outside / "secret.png", data / "exists.png")
    os.symlink(outside / "missing.png", data / "absent.png")
    manifest = data / "m.csv"
    manifest.write_text("image,label\n../outside/secret.png,happy\n../outside/missing.png,happy\n"
                        "exists.png,happy\nabsent.png,happy\n")
    report = dataset_import(path=manifest, name="m", fmt="manifest")
    reasons = [e.reason for e in report.errors]
    assert reasons[0].replace("secret", "X") == reasons[1].replace("missing", "X")
    assert reasons[2].replace("exists", "X") == reasons[3].replace("absent", "X")
    assert not Dataset.objects.exists()  # nothing imported, nothing created


def test_it_does_not_follow_a_symlinked_class_folder_or_file_unless_told(tmp_path, outside) -> None:
    other = tmp_path / "other-dataset"
    for i in range(10):
        _png(other / f"{i}.png", color=i)
    root = tmp_path / "fer"
    _png(root / "happy" / "1.png", color=200)
    os.symlink(other, root / "sad")
    os.symlink(outside / "secret.png", root / "happy" / "2.png")
    os.symlink(other, root / "happy" / "nested")
    report = dataset_import(path=root, name="fer", fmt="folder")
    assert list(Sample.objects.values_list("external_id", flat=True)) == ["happy/1.png"]
    reasons = " | ".join(str(e) for e in report.errors)
    assert "sad: class folder not read" in reasons and "happy/2.png" in reasons and "happy/nested" in reasons

    report = dataset_import(path=root, name="fer", fmt="folder", follow_symlinks=True)
    assert report.created == 21 and report.errors == []  # 10 via sad/, 10 via happy/nested/, 1 via happy/2.png


def test_the_command_follows_symlinks_only_with_the_flag(tmp_path, outside) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.symlink(outside / "secret.png", data / "linked.png")
    (data / "m.csv").write_text("image,label\nlinked.png,happy\n")
    with pytest.raises(CommandError, match="1 row"):
        call_command("import_dataset", str(data / "m.csv"), "--name", "m", "--format", "manifest", verbosity=0)
    assert not Dataset.objects.exists()
    call_command("import_dataset", str(data / "m.csv"), "--name", "m", "--format", "manifest",
                 "--follow-symlinks", verbosity=0)
    assert Sample.objects.get().external_id == "linked.png"


def test_it_confines_emotic_paths_to_the_images_root(tmp_path, outside) -> None:
    header = "Folder,Filename,Image Size,BBox,Categorical_Labels,Continuous_Labels,Gender,Age\n"
    row = "{folder},{name},\"[16, 16]\",\"[0, 0, 16, 16]\",\"['Peace']\",\"[5, 5, 5]\",M,Adult\n"
    data = tmp_path / "emotic"
    _png(data / "imgs" / "a.png")
    (data / "e.csv").write_text(header + row.format(folder="imgs", name="a.png")
                                + row.format(folder="../outside", name="secret.png"))
    report = dataset_import(path=data / "e.csv", name="e", fmt="emotic")
    assert report.created == 1
    assert "leaves the dataset folder" in report.errors[0].reason and report.errors[0].location == "e.csv:3"


def test_it_reports_invalid_utf8_late_in_a_large_manifest_and_keeps_reading(tmp_path) -> None:
    data = tmp_path / "big"
    _png(data / "a.png")
    lines = [b"image,label,reference_description"]
    # 20,003 rows naming one image, so every row after the first is a duplicate (each reported with its
    # line); four rows late in the file carry invalid UTF-8, and the last row is a new, good one.
    for i in range(20_003):
        lines.append(b"a.png,happy,ok" if i else b"a.png,happy,first")
    for n in (19_000, 19_500, 20_001, 20_002):
        lines[n - 1] = b"a.png,happy,caf\xe9 \xff"
    lines[20_003] = b"./a.png,happy,last good row"  # line 20,004: the last row, a different id
    path = data / "m.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = dataset_import(path=path, name="big", fmt="manifest")
    assert sorted(Sample.objects.values_list("external_id", flat=True)) == ["./a.png", "a.png"]
    by_line = {e.location: e.reason for e in report.errors}
    for n in (19_000, 19_500, 20_001, 20_002):
        assert by_line[f"m.csv:{n}"] == "not valid UTF-8 (byte 0xe9 at column 16)"
    assert len(report.errors) == 20_003 - 2  # every other row is a reported duplicate
    assert report.rows == 20_003


def test_it_blames_the_right_line_for_an_oversized_cell_and_reads_the_next_row(tmp_path) -> None:
    data = tmp_path / "d"
    _png(data / "a.png", color=1)
    _png(data / "b.png", color=2)
    _png(data / "c.png", color=3)
    huge = "x" * (128 * 1024 + 10)
    path = data / "m.csv"
    path.write_text(f'image,label,reference_description\na.png,happy,fine\nb.png,happy,"{huge}\nmore"\n'
                    f'c.png,sad,"two\nlines"\n')
    report = dataset_import(path=path, name="d", fmt="manifest")
    assert sorted(Sample.objects.values_list("external_id", flat=True)) == ["a.png", "c.png"]
    assert Sample.objects.get(external_id="c.png").references == ["two\nlines"]
    [error] = report.errors
    assert error.location == "m.csv:3" and "longer than 131072 characters" in error.reason


def test_it_reports_an_unclosed_quote_with_its_line(tmp_path) -> None:
    data = tmp_path / "d"
    _png(data / "a.png")
    path = data / "m.csv"
    path.write_text('image,label,reference_description\na.png,happy,fine\na.png,sad,"never closed\nx\n')
    report = dataset_import(path=path, name="d", fmt="manifest")
    [error] = report.errors
    assert error.location == "m.csv:3" and "never closed" in error.reason and "lines 3-4" in error.reason


def test_it_creates_nothing_when_every_row_fails(tmp_path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "m.csv").write_bytes(b"image,label\nmissing.png,happy\n../x.png,happy\nz\xff.png,happy\n")
    report = dataset_import(path=data / "m.csv", name="d", fmt="manifest")
    assert len(report.errors) == 3 and report.discarded
    assert "not created" in report.summary()
    assert not Dataset.objects.exists()


def test_it_keeps_an_existing_dataset_when_a_reimport_fails(tmp_path) -> None:
    shutil.copy(FACES / "biden.jpg", tmp_path / "b.jpg")
    (tmp_path / "m.csv").write_text("image,label\nb.jpg,neutral\n")
    dataset_import(path=tmp_path / "m.csv", name="d", fmt="manifest")
    (tmp_path / "m.csv").write_text("image,label\nnope.jpg,neutral\n")
    report = dataset_import(path=tmp_path / "m.csv", name="d", fmt="manifest")
    assert not report.discarded and Sample.objects.count() == 1


def test_it_reports_invalid_utf8_in_jsonl_per_line(tmp_path) -> None:
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png", color=9)
    (tmp_path / "m.jsonl").write_bytes(b'{"image": "a.png", "label": "happy"}\n{"image": "\xff"}\n'
                                       b'{"image": "b.png", "label": "sad"}\n')
    report = dataset_import(path=tmp_path / "m.jsonl", name="j", fmt="manifest")
    assert report.created == 2
    assert [(e.location, e.reason[:19]) for e in report.errors] == [("m.jsonl:2", "not valid UTF-8 (by")]


def test_it_reports_rows_the_database_or_file_system_cannot_take_and_imports_the_rest(tmp_path) -> None:
    """Each of these failed the whole import with a traceback (DataError, UnicodeEncodeError, OSError,
    RecursionError); now each costs its own row only."""
    data = tmp_path / "data"
    _png(data / "ok.png")
    (data / "m.jsonl").write_text("\n".join([
        '{"image": "ok.png", "label": "happy"}',
        '{"image": "ok.png", "label": "happy", "references": ["fine", "a\\u0000b"]}',
        '{"image": "ok.png", "label": "happy", "references": ["\\ud800"]}',
        '{"image": "' + "y" * 300 + '.png", "label": "happy"}',
        '{"image": "' + "z" * 600 + '.png", "label": "happy"}',
        "[" * 100_000,
        '{"image": "ok.png", "label": "happy", "valence": true}',
    ]) + "\n")
    report = dataset_import(path=data / "m.jsonl", name="hostile", fmt="manifest")
    assert report.created == 1 and Sample.objects.get().references == []
    by_line = {e.location: e.reason for e in report.errors}
    assert by_line["m.jsonl:2"] == by_line["m.jsonl:3"] == "a reference holds a NUL byte or is not valid UTF-8"
    assert "cannot read the image file" in by_line["m.jsonl:4"] and "File name too long" in by_line["m.jsonl:4"]
    assert "is 604 characters long; at most 500" in by_line["m.jsonl:5"]
    assert by_line["m.jsonl:6"] == "invalid JSON (nested too deeply)"
    assert by_line["m.jsonl:7"] == "valence True is not a number"  # JSON true was read as 1.0


def test_it_reports_a_file_name_that_is_not_utf8_in_a_class_folder(tmp_path) -> None:
    _png(tmp_path / "happy" / "ok.png")
    shutil.copy(tmp_path / "happy" / "ok.png", os.path.join(os.fsencode(tmp_path / "happy"), b"\xff\xfe.png"))
    report = dataset_import(path=tmp_path, name="folder", fmt="folder")
    assert list(Sample.objects.values_list("external_id", flat=True)) == ["happy/ok.png"]
    [error] = report.errors
    assert str(error) == "happy/\\udcff\\udcfe.png: the image path holds a NUL byte or is not valid UTF-8"
    str(error).encode("utf-8")  # printable by the command


def test_it_imports_from_a_folder_whose_name_is_not_utf8(tmp_path) -> None:
    # The dataset's source path could not be stored (UnicodeEncodeError), so nothing imported.
    root = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9")))
    _png(root / "happy" / "ok.png")
    report = dataset_import(path=root, name="latin", fmt="folder")
    assert report.created == 1 and report.errors == []
    assert Dataset.objects.get().source_path.endswith("caf\\udce9")


def test_it_leaves_no_empty_dataset_when_an_import_stops_on_an_unforeseen_error(tmp_path, monkeypatch) -> None:
    # The clean-up of a new dataset ran only after the loop, so an exception left an empty dataset behind.
    from inference.services import imports

    def disk_full(**_: object) -> str:
        raise OSError(28, "No space left on device")

    _png(tmp_path / "ok.png")
    (tmp_path / "m.csv").write_text("image,label\nok.png,happy\n")
    monkeypatch.setattr(imports, "image_store", disk_full)
    with pytest.raises(OSError, match="No space left"):
        dataset_import(path=tmp_path / "m.csv", name="m", fmt="manifest")
    assert not Dataset.objects.exists()
