"""python manage.py fetch_weights facechannel [--url URL] [--to PATH] [--write-env]"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from inference.services.weights import (
    FACECHANNEL_ARCHIVE_GIT_BLOB,
    FACECHANNEL_ARCHIVE_URL,
    FACECHANNEL_DIMENSIONAL_GIT_BLOB,
    FACECHANNEL_DIMENSIONAL_NAME,
    WeightsFetchError,
    env_file_set,
    facechannel_weights_fetch,
)


class Command(BaseCommand):
    help = ("Download the authors' FaceChannel archive, check its git blob id and that of "
            f"{FACECHANNEL_DIMENSIONAL_NAME} ({FACECHANNEL_ARCHIVE_GIT_BLOB[:8]}…, "
            f"{FACECHANNEL_DIMENSIONAL_GIT_BLOB[:8]}…), keep only that file, and print the FACECHANNEL_WEIGHTS "
            "line. Safe to re-run: a verified file already in place is kept without downloading.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", choices=["facechannel"], help="Which weights to fetch (only facechannel).")
        parser.add_argument("--url", default=FACECHANNEL_ARCHIVE_URL,
                            help="Where the archive trainedNetworks.tar.xz is (default: the authors' repository, "
                                 "the URL the facechannel package uses; a mirror must serve the same file).")
        parser.add_argument("--to", default=None,
                            help=f"File (or folder) to write {FACECHANNEL_DIMENSIONAL_NAME} to "
                                 f"(default: DATA_DIR/models/{FACECHANNEL_DIMENSIONAL_NAME}).")
        parser.add_argument("--write-env", nargs="?", const=str(Path(settings.BASE_DIR) / ".env"), default=None,
                            metavar="ENV_FILE",
                            help="Also set FACECHANNEL_WEIGHTS in this dotenv file (default when given "
                                 "without a value: the repository's .env, which docker compose reads).")
        parser.add_argument("--timeout", type=float, default=60.0,
                            help="Seconds to wait for the server at each step (default 60).")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 < options["timeout"] < math.inf:  # NaN, 0 or a negative value: httpx refuses it mid-request
            raise CommandError(f"--timeout must be a positive number of seconds, not {options['timeout']}")
        dest = Path(options["to"]) if options["to"] else Path(settings.DATA_DIR) / "models" / FACECHANNEL_DIMENSIONAL_NAME
        bar = tqdm(total=None, unit="B", unit_scale=True, desc="trainedNetworks.tar.xz", file=self.stderr._out,
                   disable=None)

        def progress(done: int, total: int | None) -> None:
            if total is not None and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        try:
            path = facechannel_weights_fetch(dest=dest, url=options["url"], timeout=options["timeout"],
                                             progress=progress)
        except WeightsFetchError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        line = f"FACECHANNEL_WEIGHTS={path.resolve()}"
        if options["write_env"]:
            env_path = Path(options["write_env"])
            try:
                env_file_set(path=env_path, name="FACECHANNEL_WEIGHTS", value=str(path.resolve()))
            except OSError as exc:
                raise CommandError(f"the weights are at {path}, but {env_path} could not be written: {exc}") from exc
            self.stdout.write(f"verified {FACECHANNEL_DIMENSIONAL_NAME} (git blob {FACECHANNEL_DIMENSIONAL_GIT_BLOB}); "
                              f"wrote {line} to {env_path}")
        else:
            self.stdout.write(f"verified {FACECHANNEL_DIMENSIONAL_NAME} (git blob {FACECHANNEL_DIMENSIONAL_GIT_BLOB}); "
                              "set this in your environment or .env:")
        self.stdout.write(line)
