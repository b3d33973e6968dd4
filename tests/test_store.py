import errno
import os

import pytest

from emreason import store
from emreason.errors import EmreasonError


def test_atomic_write_replaces_whole_files(tmp_path):
    p = tmp_path / "a" / "x.json"
    store.write_json(p, {"a": 1})
    store.write_json(p, {"a": 2})
    assert store.read_json(p) == {"a": 2}
    assert [f.name for f in p.parent.iterdir()] == ["x.json"]  # no temporary left behind
    assert oct(p.stat().st_mode & 0o777) != "0o600"


def test_torn_last_line_is_dropped_and_repaired(tmp_path):
    p = tmp_path / "log.jsonl"
    store.append_jsonl(p, [{"i": 0}, {"i": 1}])
    with open(p, "a") as f:
        f.write('{"i": 2, "tex')  # a write cut by SIGKILL
    assert store.read_jsonl(p) == [{"i": 0}, {"i": 1}]
    store.read_jsonl(p, repair=True)
    store.append_jsonl(p, [{"i": 3}])
    assert store.read_jsonl(p) == [{"i": 0}, {"i": 1}, {"i": 3}]


def test_disk_full_is_a_clear_error_and_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "m.json"
    store.write_json(p, {"old": True})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(EmreasonError, match="No space left.*--resume"):
        store.write_json(p, {"new": True})
    with pytest.raises(EmreasonError, match="No space left"):
        store.append_jsonl(tmp_path / "l.jsonl", [{"a": 1}])
    monkeypatch.undo()
    assert store.read_json(p) == {"old": True}
    assert sorted(f.name for f in tmp_path.iterdir()) == ["l.jsonl", "m.json"]
