"""tfds datasets by name (the `huggingface:` namespace included, read through the `datasets` package), as
examples."""

from __future__ import annotations

import contextlib
import logging

from llm2llm_jax.data.tables import DataError


def load_tfds(
    name: str,
    split: str,
    input_field: str,
    output_field: str,
    data_dir: str | None = None,
    download: bool = True,
    label_names: bool = True,
) -> list[dict]:
    """A tfds dataset by name (including the `huggingface:` namespace, read through the `datasets` package),
    prepared if needed.

    Raises DataError naming the dataset and how to supply the data when it cannot be fetched (one line: the
    Hugging Face hub's retry warnings are kept quiet).
    """
    import tensorflow_datasets as tfds

    try:
        with _quiet_hub():
            builder = tfds.builder(name, data_dir=data_dir)
            if not builder.is_prepared():
                if not download:
                    raise DataError(f"tfds dataset {name!r} is not prepared in {builder.data_dir}")
                builder.download_and_prepare()
        source = builder.as_data_source(split=split)
    except DataError:
        raise
    except Exception as e:  # network, a missing optional dependency, ...
        raise DataError(
            f"tfds dataset {name!r} (split {split!r}) is not available here ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200] if str(e) else ''}). If this machine is offline, prepare it on "
            f"one that is online (tfds build / tfds.builder(...).download_and_prepare()) and copy its "
            "data_dir, or supply the data as a file: data.source='file', data.train_path=..., "
            "data.test_path=... (JSONL, CSV or TSV)"
        ) from None
    return examples_from_records(
        source, builder.info.features, f"{name}[{split}]", input_field, output_field, label_names
    )


@contextlib.contextmanager
def _quiet_hub():
    """The Hugging Face hub client logs a warning per retry of an unreachable host; the failure is reported
    once."""
    loggers = [logging.getLogger(n) for n in ("huggingface_hub", "datasets")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def examples_from_records(
    records, features, where: str, input_field: str, output_field: str, label_names: bool = True
) -> list[dict]:
    """Examples (`id`, `input`, `output` strings) from tfds records; class labels become their names."""
    out = []
    for i in range(len(records)):
        rec = records[i]
        ex = {}
        for src, dst in ((input_field, "input"), (output_field, "output")):
            if src not in rec:
                raise DataError(f"tfds {where} record {i}: no field '{src}' (fields: {sorted(rec)})")
            value = rec[src]
            if dst == "output" and label_names and hasattr(features[src], "int2str"):
                value = features[src].int2str(int(value))
            ex[dst] = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        ex["id"] = f"{where.replace('[', '-').rstrip(']')}-{i}"
        out.append(ex)
    return out
