"""On-disk teacher cache: one JSON file per request, keyed by backend, model, prompt, sampling and seed.

Keys never include credentials. Writes are atomic (temp file + rename), so a run killed mid-call
either has the whole answer cached or none of it, and a resumed run never pays twice.
"""

from __future__ import annotations

import hashlib
import json
import os

from llm2llm_jax.common.files import listdir, read_json, write_json


def cache_key(**parts) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class DiskCache:
    def __init__(self, directory: str):
        self.directory = directory  # made by the first answer written: a run that fails at start leaves none

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, key[:2], key + ".json")

    def get(self, key: str) -> dict | None:
        try:
            return read_json(self._path(key))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def put(self, key: str, value: dict) -> None:
        write_json(self._path(key), value, indent=None)

    def __len__(self) -> int:
        return sum(len(listdir(os.path.join(self.directory, d))) for d in listdir(self.directory))
