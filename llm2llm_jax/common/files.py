"""The run directory's storage: atomic writes and reads of JSON/JSONL/bytes, on a local disk or on an object
store (`gs://bucket/path`, through etils.epath and gcsfs), behind one set of functions.

Writes never leave half a file. Locally: a temporary name in the same directory, then a rename. On an
object store, which has no rename: the content is built in memory and uploaded once under its final
name (an upload is atomic: the object appears whole or not at all). Resume relies on this for every
stage output, the teacher cache and the extracted assets.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO


def is_remote(path: str) -> bool:
    """A URL of an object store (gs://...), as opposed to a local path."""
    return "://" in str(path)


def _remote(path: str):
    from etils import epath

    return epath.Path(path)


def absolute(path: str) -> str:
    return str(path) if is_remote(path) else os.path.abspath(path)


def exists(path: str) -> bool:
    return _remote(path).exists() if is_remote(path) else os.path.exists(path)


def listdir(path: str) -> list[str]:
    """Names in a directory ([] when it does not exist)."""
    if is_remote(path):
        p = _remote(path)
        return sorted(c.name for c in p.iterdir()) if p.is_dir() else []
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def makedirs(path: str) -> None:
    """A local directory and its parents (an object store has no directories to make)."""
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)


def remove(path: str) -> None:
    """Delete a file; a missing one is fine."""
    with contextlib.suppress(FileNotFoundError):
        _remote(path).unlink() if is_remote(path) else os.remove(path)


def rmtree(path: str) -> None:
    """Delete a directory tree; a missing one is fine."""
    if is_remote(path):
        p = _remote(path)
        if p.exists():
            p.rmtree()
    else:
        shutil.rmtree(path, ignore_errors=True)


def remove_empty_dir(path: str) -> None:
    """Remove a local directory if it is empty (a failed start leaves no trace)."""
    if not is_remote(path) and os.path.isdir(path) and not os.listdir(path):
        os.rmdir(path)


def size(path: str) -> int:
    """Bytes of a file, or of every file under a directory (0 when it does not exist)."""
    if is_remote(path):
        p = _remote(path)
        if not p.exists():
            return 0
        return sum(f.stat().length for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().length
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(path) for n in ns)


def read_bytes(path: str) -> bytes:
    if is_remote(path):
        return _remote(path).read_bytes()  # FileNotFoundError when missing, as locally
    with open(path, "rb") as f:
        return f.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once, at import (before any thread runs): reading it means setting it for a moment.
_UMASK = _read_umask()


def usual_permissions(path: str) -> None:
    """Give `path` (and, for a directory, everything under it) the permissions `open` and `os.makedirs` would
    have: temporary files and directories are made private to their owner, and what is renamed into place from
    them should be readable like any other output (a model served by another user, a report)."""
    mask = _UMASK
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~mask)
    for root, dirs, names in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o777 & ~mask)
        for n in names:
            os.chmod(os.path.join(root, n), 0o666 & ~mask)


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w") -> Iterator[IO]:
    """Open a file to write ("w" text UTF-8, or "wb") that replaces `path` only when the block succeeds."""
    if is_remote(path):
        buffer = io.BytesIO() if "b" in mode else io.StringIO()
        yield buffer
        data = buffer.getvalue()
        _remote(path).write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        return
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
        usual_permissions(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if isinstance(e, OSError) and not e.filename:  # a failed write names no file: name the one being made
            raise OSError(e.errno, e.strerror, path) from e
        raise


def create_exclusive(path: str, data: bytes) -> bool:
    """Create `path` holding `data` unless it exists (False then), as one atomic step: a hard link locally, a
    generation precondition (if-generation-match 0) on an object store."""
    if is_remote(path):
        import fsspec

        fs, target = fsspec.core.url_to_fs(path)
        try:
            with fs.open(target, "xb") as f:
                f.write(data)
        except FileExistsError:
            return False
        return True
    # The content first, under a temporary name, then a hard link to `path`, which fails if it exists: the
    # file never exists without its content (an interrupted start leaves no empty lock).
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.remove(tmp)
    return True


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
        if read_bytes(path) == data:
            return False
    except FileNotFoundError:
        pass
    with atomic_open(path, "wb") as f:
        f.write(data)
    return True


def read_json(path: str):
    return json.loads(read_text(path))


def read_jsonl(path: str) -> list[dict]:
    return [json.loads(line) for line in read_text(path).splitlines() if line.strip()]
