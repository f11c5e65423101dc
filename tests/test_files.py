"""Atomic writes: a failure mid-write keeps the old file and leaves no temporary behind."""

import os

import pytest

from llm2llm_jax.common.files import atomic_open, read_json, read_jsonl, write_json, write_jsonl


def test_round_trip_and_failed_write_keeps_the_old_file(tmp_path):
    path = str(tmp_path / "sub" / "out.json")
    write_json(path, {"a": 1})
    with pytest.raises(RuntimeError), atomic_open(path) as f:
        f.write('{"a": 2, "trunc')
        raise RuntimeError("killed mid-write")
    assert read_json(path) == {"a": 1}
    assert os.listdir(tmp_path / "sub") == ["out.json"]
    write_jsonl(str(tmp_path / "rows.jsonl"), [{"x": "é"}, {"x": 2}])
    assert read_jsonl(str(tmp_path / "rows.jsonl")) == [{"x": "é"}, {"x": 2}]
    with atomic_open(str(tmp_path / "blob.bin"), "wb") as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "blob.bin").read_bytes() == b"\x00\x01"


def test_a_file_written_atomically_has_the_permissions_open_would_give_it(tmp_path):
    mask = os.umask(0o027)  # a umask other than the usual 022; restored below
    try:
        from llm2llm_jax.common import files

        files_umask, files._UMASK = files._UMASK, 0o027  # read at import: what this process's umask was then
        write_json(str(tmp_path / "out.json"), {"a": 1})
        with open(tmp_path / "plain.json", "w") as f:
            f.write("{}")
        assert (
            os.stat(tmp_path / "out.json").st_mode & 0o777 == os.stat(tmp_path / "plain.json").st_mode & 0o777
        )
        assert os.stat(tmp_path / "out.json").st_mode & 0o777 == 0o640
    finally:
        os.umask(mask)
        files._UMASK = files_umask
