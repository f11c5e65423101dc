"""Atomic file writes (a temporary name in the same directory, then a rename) and JSON/JSONL helpers.

A run killed mid-write leaves either the old file or the new one, never half of one: resume relies
on this for every stage output, the teacher cache and the extracted assets.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import IO, Iterator, Sequence


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file next to `path` ("w" text UTF-8 or "wb"); it replaces `path` only on success."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if isinstance(e, OSError) and not e.filename:  # a failed write names no file: name the one being made
            raise OSError(e.errno, e.strerror, path) from e
        raise


def write_json(path: str, obj, indent: int | None = 2) -> None:
    with atomic_open(path) as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)


def write_jsonl(path: str, rows: Sequence[dict]) -> None:
    with atomic_open(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_if_changed(path: str, data: bytes) -> bool:
    """Write `data` atomically unless `path` already holds exactly it (a finished run stays read-only)."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except FileNotFoundError:
        pass
    with atomic_open(path, "wb") as f:
        f.write(data)
    return True


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
