"""Per-iteration training sets as tfds array_record datasets (readable by tfds by name), one per iteration.

Iteration i's set is the builder config `iteration_000i` of the `llm2llm_shards` dataset under the
run's shard directory (tfds only generates a builder's current version, so each iteration is a
config of its own), written by a real tfds GeneratorBasedBuilder (no TensorFlow needed for array_record). tfds
writes into a temporary directory and renames it when complete, so a killed write leaves no partial version
and `is_written` tells whether an iteration is done.

Records carry provenance: id, origin ('seed' or 'teacher'), parent_id (the seed example a teacher
example was made from) and iteration (when it entered the set).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds

from llm2llm_jax.common import files
from llm2llm_jax.common.console import without_log_records

NAME = "llm2llm_shards"
MAX_ITERATIONS = 1000
TEXT_FIELDS = ("id", "input", "output", "origin", "parent_id")


VERSION = "1.0.0"


def _config_name(iteration: int) -> str:
    if not 0 <= iteration < MAX_ITERATIONS:
        raise ValueError(f"iteration {iteration} outside 0..{MAX_ITERATIONS - 1}")
    return f"iteration_{iteration:04d}"


class Llm2llmShards(tfds.core.GeneratorBasedBuilder):
    """One LLM2LLM training set per builder config (iteration_0000, iteration_0001, ...)."""

    VERSION = tfds.core.Version(VERSION)
    RELEASE_NOTES = {VERSION: "LLM2LLM training set with provenance fields"}
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(
            name=_config_name(i),
            version=VERSION,
            description=f"iteration {i}",
            release_notes={VERSION: "initial"},
        )
        for i in range(MAX_ITERATIONS)
    ]

    def __init__(self, *, examples: Sequence[dict] = (), **kwargs):
        self._examples = list(examples)
        super().__init__(**kwargs)

    def _info(self):
        features = {k: tfds.features.Text() for k in TEXT_FIELDS}
        features["iteration"] = tfds.features.Scalar(dtype=np.int32)
        # Keep written order: records are read back exactly as the controller wrote them.
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features), disable_shuffling=True
        )

    # tfds prints "Downloading and preparing..." for every write; the controller reports progress itself.
    def _log_download_bytes(self):
        pass

    def _log_download_done(self):
        pass

    def _split_generators(self, dl_manager):
        del dl_manager
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i, ex in enumerate(self._examples):
            record = {k: str(ex.get(k, "")) for k in TEXT_FIELDS}
            record["iteration"] = int(ex.get("iteration", 0))
            yield f"{i:08d}", record


def _builder(shard_dir: str, iteration: int, examples: Sequence[dict] = ()):
    return Llm2llmShards(
        data_dir=shard_dir, config=_config_name(iteration), file_format="array_record", examples=examples
    )


def _path(shard_dir: str, iteration: int) -> str:
    return os.path.join(shard_dir, NAME, _config_name(iteration), VERSION)


def is_written(shard_dir: str, iteration: int) -> bool:
    if files.is_remote(shard_dir):  # its dataset_info.json is uploaded last
        return files.exists(os.path.join(_path(shard_dir, iteration), "dataset_info.json"))
    if not os.path.isdir(_path(shard_dir, iteration)):
        return False
    with _without_variant_warning():
        return _builder(shard_dir, iteration).is_prepared()


def write_iteration(shard_dir: str, iteration: int, examples: Sequence[dict]) -> str:
    """Write iteration `iteration`'s training set (skipped if that version is already complete).

    On an object store (array_record writes local files only) the version is written to a local temporary
    directory and uploaded file by file, dataset_info.json last, so `is_written` sees only complete ones.
    """
    if not examples:
        raise ValueError(f"iteration {iteration}: refusing to write an empty training set")
    if files.is_remote(shard_dir):
        if not is_written(shard_dir, iteration):
            with tempfile.TemporaryDirectory(prefix="llm2llm-shard-") as local:
                written = write_iteration(local, iteration, examples)
                names = sorted(os.listdir(written), key=lambda n: n == "dataset_info.json")
                for name in names:
                    files.write_if_changed(
                        os.path.join(_path(shard_dir, iteration), name),
                        files.read_bytes(os.path.join(written, name)),
                    )
        return _path(shard_dir, iteration)
    builder = _builder(shard_dir, iteration, examples)
    with _without_variant_warning():
        if not builder.is_prepared():
            tfds.disable_progress_bar()
            builder.download_and_prepare()
    return _path(shard_dir, iteration)


def _without_variant_warning():
    """tfds logs "Variant folder ... has no dataset_info.json" when asked whether a version it has not
    finished writing is prepared: the answer (no) is what this module asks for, not a problem."""
    return without_log_records(lambda record: record.getMessage().startswith("Variant folder"), "absl")


def _decode(record: dict) -> dict:
    out = {
        k: (v.decode("utf-8") if isinstance(v, bytes) else str(v))
        for k, v in record.items()
        if k in TEXT_FIELDS
    }
    out["iteration"] = int(record["iteration"])
    return out


def data_source(shard_dir: str, iteration: int):
    """Random-access array_record source of one iteration's records (read through tfds, no builder code)."""
    path = _path(shard_dir, iteration)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: iteration {iteration} has not been written")
    return tfds.builder_from_directory(path).as_data_source()["train"]


def read_iteration(shard_dir: str, iteration: int) -> list[dict]:
    """Every record of one iteration, in written order (from an object store: through a local copy, which
    reads the set in a few requests rather than one per record)."""
    if files.is_remote(shard_dir):
        remote = _path(shard_dir, iteration)
        if not is_written(shard_dir, iteration):
            raise FileNotFoundError(f"{remote}: iteration {iteration} has not been written")
        with tempfile.TemporaryDirectory(prefix="llm2llm-shard-") as local:
            copy = _path(local, iteration)
            os.makedirs(copy)
            for name in files.listdir(remote):
                with open(os.path.join(copy, name), "wb") as f:
                    f.write(files.read_bytes(os.path.join(remote, name)))
            return read_iteration(local, iteration)
    source = data_source(shard_dir, iteration)
    return [_decode(source[i]) for i in range(len(source))]
