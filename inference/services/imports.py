"""Dataset import: validate every row, store images by content hash, upsert samples."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils.text import slugify

from inference.importers import FORMATS, ImportErrorRow, SampleRecord
from inference.importers.base import ImageRejected, image_check
from inference.models import BASIC_LABELS, EMOTIC_LABELS, Dataset, Sample
from inference.text import text_storable

LABEL_SETS = {"basic": BASIC_LABELS, "emotic": EMOTIC_LABELS}


class ImportFailed(ValueError):
    """The import as a whole cannot start (bad path, unknown format, conflicting dataset)."""


@dataclass
class ImportReport:
    dataset: Dataset
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[ImportErrorRow] = field(default_factory=list)
    discarded: bool = False  # the dataset was new and no row imported: it was not kept

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged + len(self.errors)

    def summary(self) -> str:
        text = (f"dataset {self.dataset.name}: {self.created} created, {self.updated} updated, "
                f"{self.unchanged} unchanged, {len(self.errors)} error(s)")
        return text + ("; nothing imported, so the dataset was not created" if self.discarded else "")


def image_store(*, data: bytes, sha256: str, extension: str) -> str:
    """Content-addressed storage: the same bytes are stored once, whatever their file name."""
    name = f"samples/{sha256[:2]}/{sha256}.{extension}"
    if not default_storage.exists(name):
        saved = default_storage.save(name, ContentFile(data))
        if saved != name:  # a concurrent import wrote the same content first; keep one copy
            default_storage.delete(saved)
    return name


def _label_set_for(fmt: str, label_set: str | None) -> tuple[list[str], bool]:
    key = label_set or ("emotic" if fmt == "emotic" else "basic")
    if not isinstance(key, str) or key not in LABEL_SETS:  # a task argument may be anything
        raise ImportFailed(f"unknown label set {key!r} (choose {', '.join(LABEL_SETS)})")
    return LABEL_SETS[key], key == "emotic"


def _path_text(path: Path) -> str:
    """Where a dataset came from, as storable text: a folder name that is not UTF-8 was a UnicodeEncodeError
    at the insert, so its bytes are escaped; cut to the column (it is only shown, never opened)."""
    text = str(path).encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:Dataset._meta.get_field("source_path").max_length]


def _record_problem(record: SampleRecord) -> str | None:
    """Why the row cannot be stored, if it cannot: PostgreSQL takes no NUL byte and UTF-8 no unpaired
    surrogate (a JSONL "\\ud800", a file name that is not UTF-8). Checked per row, so the row is reported
    with its line instead of the insert failing the whole import."""
    longest = Sample._meta.get_field("external_id").max_length
    if len(record.external_id) > longest:
        return f"the sample id (image path) is {len(record.external_id)} characters long; at most {longest}"
    for what, texts in (("the image path", [record.external_id]), ("a label", record.labels),
                        ("a reference", record.references)):
        if not all(text_storable(text) for text in texts):
            return f"{what} holds a NUL byte or is not valid UTF-8"
    return None


def _sample_fields(record: SampleRecord, stored_name: str, checked) -> dict:
    return {
        "image": stored_name, "image_sha256": checked.sha256, "width": checked.width, "height": checked.height,
        "labels": record.labels, "gt_valence": record.gt_valence, "gt_arousal": record.gt_arousal,
        "gt_dominance": record.gt_dominance, "references": record.references, "body_box": record.body_box,
        "meta": record.meta,
    }


def dataset_import(
    *,
    path: str | Path,
    name: str,
    fmt: str,
    label_set: str | None = None,
    images_root: str | Path | None = None,
    follow_symlinks: bool = False,
    progress: Callable[[int], None] | None = None,
    records: Iterable[SampleRecord | ImportErrorRow] | None = None,
) -> ImportReport:
    """Import (or re-import) a dataset. Safe to re-run: unchanged rows are left alone.

    Image paths stay inside the dataset folder; `follow_symlinks` lets symbolic links lead outside it.
    A new dataset none of whose rows imported is deleted again (`report.discarded`): a failed import
    leaves nothing behind."""
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ImportFailed(f"unknown format {fmt!r} (choose {', '.join(FORMATS)})")
    if not isinstance(name, str) or slugify(name) != name:  # also for the Celery task, which has no form
        raise ImportFailed(f"--name must be a slug (letters, digits, - and _), e.g. {slugify(str(name))!r}")
    longest = Dataset._meta.get_field("name").max_length
    if len(name) > longest:
        raise ImportFailed(f"the dataset name is {len(name)} characters long; at most {longest}")
    if not isinstance(path, str | Path):
        raise ImportFailed(f"the path must be a file or folder name, not {path!r}")
    source = Path(path).expanduser()
    if not source.exists():
        raise ImportFailed(f"path does not exist: {source}")
    labels, multilabel = _label_set_for(fmt, label_set)
    existing = Dataset.objects.filter(name=name).first()
    if existing and existing.format != fmt:
        raise ImportFailed(f"dataset {name!r} already exists with format {existing.format!r}, not {fmt!r}")
    dataset, created_now = Dataset.objects.get_or_create(
        name=name,
        defaults={"format": fmt, "source_path": _path_text(source.resolve()), "label_set": labels,
                  "multilabel": multilabel},
    )
    report = ImportReport(dataset=dataset)
    kwargs: dict = {"label_set": labels, "follow_symlinks": follow_symlinks}
    if fmt == "manifest":
        kwargs["multilabel"] = multilabel
    if fmt == "emotic" and images_root:
        kwargs["images_root"] = Path(images_root)
    iterator = records if records is not None else FORMATS[fmt](source, **kwargs)
    seen: dict[str, str] = {}
    try:
        for record in iterator:
            if progress:
                progress(1)
            if isinstance(record, ImportErrorRow):
                report.errors.append(record)
                continue
            problem = _record_problem(record)
            if problem is not None:
                # The location may hold the same undecodable file name: escaped, so it can be printed.
                location = record.location.encode("utf-8", "backslashreplace").decode("utf-8")
                report.errors.append(ImportErrorRow(location, problem))
                continue
            if record.external_id in seen:
                report.errors.append(ImportErrorRow(record.location, f"duplicate of {seen[record.external_id]} "
                                                    f"({record.external_id})"))
                continue
            seen[record.external_id] = record.location
            try:
                checked = image_check(record.image_path, max_bytes=settings.IMPORT_MAX_IMAGE_BYTES,
                                      max_pixels=settings.IMPORT_MAX_IMAGE_PIXELS)
            except ImageRejected as exc:
                report.errors.append(ImportErrorRow(record.location, str(exc)))
                continue
            stored = image_store(data=checked.data, sha256=checked.sha256, extension=checked.extension)
            fields = _sample_fields(record, stored, checked)
            with transaction.atomic():
                sample = (Sample.objects.select_for_update()
                          .filter(dataset=dataset, external_id=record.external_id).first())
                if sample is None:
                    Sample.objects.create(dataset=dataset, external_id=record.external_id, **fields)
                    report.created += 1
                elif all(getattr(sample, key) == (str(value) if key == "image" else value)
                         for key, value in fields.items() if key != "image") and sample.image.name == stored:
                    report.unchanged += 1
                else:
                    for key, value in fields.items():
                        setattr(sample, key, value)
                    sample.save()
                    report.updated += 1
    finally:
        # Also when a row raised something unforeseen (a full disk): a new dataset with no sample goes.
        if created_now and not dataset.samples.exists():
            dataset.delete()
            report.discarded = True
    return report
