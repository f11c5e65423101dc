"""The predict command: a saved student (a run directory, or its student/) answers every row of a JSONL, CSV
or TSV file, one JSON line per row.

    python -m llm2llm_jax.predict runs/default --input questions.csv --output answers.jsonl
    llm2llm-predict runs/default --input questions.jsonl --output answers.jsonl --mode score

The input column is the run's (`data.input_field`) unless --input-field names another; the prompt format, the
task's parser and the evaluation mode are the run's. Bad input is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from llm2llm_jax.common.errors import UserError
from llm2llm_jax.data.tables import DataError, read_lines, read_table
from llm2llm_jax.student.saved import SavedStudent, read_meta, student_dir


def read_inputs(path: str, field: str, fmt: str = "") -> list[str]:
    """The `field` of every row of a JSONL, CSV or TSV file (errors name the file, line and field)."""
    if not any(line.strip() for line in read_lines(path)):
        raise DataError(f"{path}: no rows; give a JSONL, CSV or TSV file with a '{field}' field")
    return [row["input"] for row in read_table(path, input_field=field, output_field=field, fmt=fmt)]


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="llm2llm-predict", description=__doc__.splitlines()[0])
    ap.add_argument("student", help="a run directory whose student was exported, or that student/ directory")
    ap.add_argument("--input", required=True, help="JSONL, CSV or TSV file")
    ap.add_argument("--output", required=True, help="JSONL file: one line per input row")
    ap.add_argument(
        "--input-field", default="", help="the column to read (default: the run's data.input_field)"
    )
    ap.add_argument("--format", default="", help="jsonl, csv or tsv (default: from the extension)")
    ap.add_argument(
        "--mode", default="", choices=("", "generate", "score"), help="default: the run's eval.mode"
    )
    ap.add_argument("--batch-size", type=int, default=0, help="prompts per batch (default: the run's)")
    ap.add_argument("--no-progress", action="store_true")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        meta = read_meta(student_dir(args.student))
        field = args.input_field or meta["fields"]["input"]
        inputs = read_inputs(args.input, field, args.format)
        student = SavedStudent.load(args.student)
        rows = student.predict(
            inputs, mode=args.mode, batch_size=args.batch_size, progress=not args.no_progress
        )
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot write {e.filename or args.output}: {e.strerror}", file=sys.stderr)
        return 2
    print(f"{len(rows)} predictions in {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
