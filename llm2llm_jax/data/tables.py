"""Local data files: JSONL, CSV and TSV rows mapped to examples, with errors that name the file, line and
field.

Examples are dicts with `input` and `output` (see tasks.py) plus provenance: `id`, `origin`
('seed' or 'teacher'), `parent_id`, `iteration`. Every data module raises `DataError`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence

from llm2llm_jax.common.errors import UserError
from llm2llm_jax.data.tasks import Task, TaskError


class DataError(UserError, ValueError):
    """Input data that cannot be used; the message names the file, line and field."""


def read_lines(path: str) -> list[str]:
    """Decoded lines of a UTF-8 file; a bad byte is reported with its line and column."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    lines = raw.split(b"\n")
    out = []
    for number, line in enumerate(lines, start=1):
        try:
            out.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as e:
            raise DataError(
                f"{path}:{number}: not valid UTF-8 (byte 0x{line[e.start]:02x} at column {e.start + 1}); "
                f"re-save the file as UTF-8"
            ) from None
    if out and out[0].startswith("\ufeff"):
        out[0] = out[0][1:]
    return out


def read_table(
    path: str,
    input_field: str = "input",
    output_field: str = "output",
    fmt: str = "",
    keep_fields: Sequence[str] = (),
) -> list[dict]:
    """Rows of a JSONL, CSV or TSV file mapped to {'input', 'output', ...}.

    fmt: 'jsonl', 'csv' or 'tsv' (default: from the extension). Errors name file, line and field.
    """
    fmt = fmt or os.path.splitext(path)[1].lstrip(".").lower()
    if fmt == "json":
        fmt = "jsonl"
    if fmt not in ("jsonl", "csv", "tsv"):
        raise DataError(f"{path}: unknown format {fmt!r}; use .jsonl, .csv or .tsv (or set the format)")
    lines = read_lines(path)
    rows: list[tuple[int, Mapping]] = []
    if fmt == "jsonl":
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{number}: not valid JSON ({e.msg} at column {e.colno})") from None
            except (ValueError, RecursionError) as e:  # an integer over 4300 digits, nesting past the stack
                raise DataError(f"{path}:{number}: not readable as JSON ({e})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
            rows.append((number, obj))
    else:
        text = "\n".join(lines)
        reader = csv.DictReader(io.StringIO(text), delimiter="," if fmt == "csv" else "\t")
        try:
            header = reader.fieldnames or []
            for field in (input_field, output_field):
                if field not in header:
                    raise DataError(f"{path}:1: header has no column '{field}' (columns: {header})")
            for obj in reader:
                if None in obj:  # more cells than header columns
                    raise DataError(
                        f"{path}:{reader.line_num}: {len(header) + len(obj[None])} cells but the header "
                        f"has {len(header)} columns"
                    )
                rows.append((reader.line_num, obj))
        except csv.Error as e:  # a cell over csv's 128 KiB limit, a lone \r (old Mac line ends) ...
            # line_num counts the lines read before the one that failed
            raise DataError(f"{path}:{reader.line_num + 1}: not readable as {fmt.upper()} ({e})") from None
    if not rows:
        raise DataError(f"{path}: no rows")
    out = []
    for number, obj in rows:
        example = {}
        for src, dst in ((input_field, "input"), (output_field, "output")):
            value = obj.get(src)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise DataError(f"{path}:{number}: field '{src}' is missing or empty")
            example[dst] = value if isinstance(value, str) else json.dumps(value)
        for field in keep_fields:
            if field in obj:
                example[field] = obj[field]
        example["source_line"] = number
        out.append(example)
    return out


def check_labels(
    examples: Sequence[dict],
    task: Task,
    source: str,
    output_field: str = "output",
    input_field: str = "input",
) -> None:
    """Every example valid for the task (label in the label set, a final answer for gsm8k...); an error
    names the file and line, and the user's own column with the config key that maps it."""
    for i, ex in enumerate(examples):
        where = f"{source}:{ex['source_line']}" if "source_line" in ex else f"{source} row {i}"
        try:
            task.validate(ex, where)
        except TaskError as e:
            message = str(e).replace("field 'input'", f"field {input_field!r}")
            message = message.replace("field 'output'", f"field {output_field!r}")
            raise DataError(f"{message} (config.data.output_field={output_field!r})") from None
