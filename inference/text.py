"""Text as the database can store it: PostgreSQL takes no NUL byte in text, and UTF-8 no unpaired surrogate
(a JSON "\\ud800", a file name that is not UTF-8 decoded with surrogateescape)."""
from __future__ import annotations

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


def storable_text(text: str) -> str:
    """`text` with each NUL byte and unpaired surrogate replaced by U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text)
