"""Files that survive a crash: atomic whole-file writes and append-only JSONL logs.

A whole file is written to a temporary name in the same folder and renamed over the target (an
atomic step on POSIX), so a reader sees the old file or the new one, never half of one. A log is
appended one line at a time; a torn last line from a killed process is dropped on read.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from .errors import EmreasonError


@contextmanager
def disk_errors(path):
    """A full disk (or a read-only one) becomes a clear error; the run stays resumable, because
    what was being written is either complete or absent."""
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise EmreasonError(f"could not write {path}: {os.strerror(e.errno)}. Free some space, then "
                                "continue with --resume: nothing already written was lost") from None
        raise


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    with disk_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a run's files are ordinary files
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _jsonl(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    atomic_write_text(path, _jsonl(rows))


def append_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Append rows, each a complete line, flushed to disk before returning."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _jsonl(rows)
    with disk_errors(path):
        with open(path, "a", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike, repair: bool = False) -> list[dict]:
    """Rows of a JSONL log. A last line without its newline (a write cut by a crash) is dropped;
    with `repair`, it is also cut from the file so that later appends start on a clean line."""
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    end = raw.rfind(b"\n") + 1
    if end < len(raw) and repair:
        with open(path, "r+b") as f:
            f.truncate(end)
    rows = []
    for line in raw[:end].decode("utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def read_rows(path: str | os.PathLike) -> list[dict]:
    """JSONL, or its gzip-compressed copy beside it (results/ commits compressed logs)."""
    path = Path(path)
    gz = path.with_suffix(path.suffix + ".gz")
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    elif gz.is_file():
        text = gzip.decompress(gz.read_bytes()).decode("utf-8")
    else:
        return []
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def rewrite_rows(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Replace JSONL rows in the form they were found: plain, or gzip-compressed beside `path`
    (with no time stamp, so the same rows give the same bytes)."""
    path = Path(path)
    gz = path.with_suffix(path.suffix + ".gz")
    if path.is_file() or not gz.is_file():
        write_jsonl(path, rows)
        return
    atomic_write_bytes(gz, gzip.compress(_jsonl(rows).encode("utf-8"), compresslevel=9, mtime=0))
