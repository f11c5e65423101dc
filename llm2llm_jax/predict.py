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
import sys

from llm2llm_jax.common import files
from llm2llm_jax.common.errors import UserError
from llm2llm_jax.data.tables import DataError, read_lines, read_table
from llm2llm_jax.student.saved import SavedStudent, read_meta, student_dir


def read_inputs(path: str, field: str, fmt: str = "") -> list[str]:
    """The `field` of every row of a JSONL, CSV or TSV file (errors name the file, line and field)."""
    if not any(line.strip() for line in read_lines(path)):
        raise DataError(f"{path}: no rows; give a JSONL, CSV or TSV file with a '{field}' field")
    return [row["input"] for row in read_table(path, input_field=field, output_field=field, fmt=fmt)]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, as every other bad input gets, not the usage block
        print(f"error: {message} (see llm2llm-predict --help)", file=sys.stderr)
        sys.exit(2)


def parse_args(argv):
    ap = _Parser(
        prog="llm2llm-predict",
        description="A saved student answers every row of a JSONL, CSV or TSV file, one JSON line per row.",
    )
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
    ap.add_argument(
        "--mesh",
        type=_mesh,
        default=(1, -1, 1),
        help="data,fsdp,tensor axes of the device mesh (default 1,-1,1: every device on the fsdp axis)",
    )
    ap.add_argument("--no-progress", action="store_true")
    return ap.parse_args(argv)


def _mesh(text: str) -> tuple:
    try:
        shape = tuple(int(x) for x in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3:
        raise argparse.ArgumentTypeError(f"{text!r}: give three comma-separated sizes, e.g. 1,-1,1")
    return shape


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        meta = read_meta(student_dir(args.student))
        field = args.input_field or meta["fields"]["input"]
        inputs = read_inputs(args.input, field, args.format)
        student = SavedStudent.load(args.student, mesh_shape=args.mesh)
        rows = student.predict(
            inputs, mode=args.mode, batch_size=args.batch_size, progress=not args.no_progress
        )
        with files.atomic_open(args.output) as f:  # no half-written output
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
