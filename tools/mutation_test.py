"""Targeted mutation testing: put one small bug into a copy of the code, run the tests that claim to guard it,
repeat.

Each mutation (tools/mutations.py) names the source file, the exact text it replaces, and the pytest node
ids that should fail on it. The runner copies the repository once (git's tracked and unignored files) into
a temporary directory, checks that those tests pass on the unchanged copy, then for every mutation writes
the bug, runs the tests (stopping at the first failure), and puts the file back. The working tree is never
touched.

    python tools/mutation_test.py                      # every mutation; prints a markdown report
    python tools/mutation_test.py --only lr-constant-after-warmup,top-p-ignored
    python tools/mutation_test.py --check              # only check each mutation still applies (fast)
    python tools/mutation_test.py --report docs/mutation_report.md

Caught: a test failed (or the run errored, hung past --timeout, or crashed). Survived: every test passed.
"no tests ran": a node id in the list names no test; it counts as not caught.
Mutations marked `equivalent` do not change behaviour; they are run and listed but left out of the score.
Exit status: 0 when the score reaches --target (default 0.9), 1 otherwise, 2 when the baseline fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mutations import MUTATIONS, Mutation


@dataclasses.dataclass
class Outcome:
    mutation: Mutation
    status: str  # caught | survived | error | timeout
    caught_by: str
    seconds: float


def apply(source: str, mutation: Mutation) -> str:
    """`source` with every (old, new) of the mutation replaced; each `old` must occur exactly once."""
    for old, new in mutation.edits:
        count = source.count(old)
        if count != 1:
            raise ValueError(
                f"mutation {mutation.name}: {old!r} occurs {count} times in {mutation.file} "
                f"(it must occur exactly once; update tools/mutations.py)"
            )
        source = source.replace(old, new)
    return source


def check_all(mutations) -> list[str]:
    """Problems with the mutation list against the current sources (empty when every mutation applies)."""
    problems = []
    names = [m.name for m in mutations]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"duplicate mutation name {name}")
    for m in mutations:
        path = os.path.join(ROOT, m.file)
        if not os.path.exists(path):
            problems.append(f"mutation {m.name}: no file {m.file}")
            continue
        with open(path) as f:
            try:
                mutated = apply(f.read(), m)
            except ValueError as e:
                problems.append(str(e))
                continue
        if m.file.endswith(".py"):
            try:
                compile(mutated, m.file, "exec")
            except SyntaxError as e:
                problems.append(f"mutation {m.name}: the mutated {m.file} does not parse ({e})")
        for test in m.tests:
            test_file, _, function = test.partition("::")
            if not os.path.exists(os.path.join(ROOT, test_file)):
                problems.append(f"mutation {m.name}: no test file {test_file}")
                continue
            function = function.split("[")[0]
            with open(os.path.join(ROOT, test_file)) as f:
                if function and f"def {function}(" not in f.read():
                    problems.append(f"mutation {m.name}: no test {function} in {test_file}")
    return problems


def copy_repository(dest: str) -> None:
    """The files git would commit (tracked plus untracked, not ignored), copied into `dest`."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = os.path.join(ROOT, rel)
        if not os.path.isfile(src):
            continue
        os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, rel))
    if os.path.isdir(os.path.join(ROOT, ".cache")):  # compiled-program cache of the loop tests
        os.symlink(os.path.join(ROOT, ".cache"), os.path.join(dest, ".cache"))


def run_tests(copy: str, tests, timeout: float) -> tuple[str, str, float]:
    """(status, first failing test or the reason, seconds) for pytest over `tests` in the copy."""
    env = dict(os.environ, PYTHONPATH=copy, PYTHONDONTWRITEBYTECODE="1")
    start = time.time()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return "timeout", f"no result within {timeout:.0f} s", time.time() - start
    seconds = time.time() - start
    if proc.returncode == 0:
        return "survived", "", seconds
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, re.M)
    if proc.returncode == 1 and failed:
        return "caught", failed[0], seconds
    if proc.returncode in (4, 5):  # a node id that names no test: a mistake in the list, never a catch
        return "no tests ran", (proc.stdout + proc.stderr).strip().splitlines()[-1][:160], seconds
    return (
        "error",
        (
            failed[0]
            if failed
            else f"pytest exit {proc.returncode}: "
            + (proc.stdout + proc.stderr).strip().splitlines()[-1][:160]
        ),
        seconds,
    )


def report(outcomes: list[Outcome]) -> str:
    scored = [o for o in outcomes if not o.mutation.equivalent]
    caught = [o for o in scored if o.status not in ("survived", "no tests ran")]
    lines = [
        "| mutation | file | what it breaks | result | caught by | s |",
        "| --- | --- | --- | --- | --- | ---: |",
    ]
    for o in outcomes:
        result = (
            "equivalent" + ("" if o.status == "survived" else f" ({o.status})")
            if o.mutation.equivalent
            else o.status
        )
        lines.append(
            f"| `{o.mutation.name}` | `{o.mutation.file}` | {o.mutation.what} | {result} | "
            f"{'`' + o.caught_by + '`' if o.caught_by else ''} | {o.seconds:.0f} |"
        )
    score = len(caught) / max(1, len(scored))
    lines += ["", f"Score: {len(caught)} of {len(scored)} behaviour-changing mutations caught ({score:.1%})."]
    equivalent = [o.mutation for o in outcomes if o.mutation.equivalent]
    if equivalent:
        lines += ["", "Judged equivalent (not scored):"]
        lines += [f"- `{m.name}`: {m.equivalent}" for m in equivalent]
    survivors = [o.mutation for o in scored if o.status in ("survived", "no tests ran")]
    if survivors:
        lines += ["", "Survivors: " + ", ".join(f"`{m.name}`" for m in survivors)]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated mutation names (default: all)")
    ap.add_argument("--check", action="store_true", help="only check that every mutation applies and parses")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--report", default="", help="also write the markdown report to this file")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per pytest run")
    ap.add_argument("--target", type=float, default=0.9, help="score below which the exit status is 1")
    args = ap.parse_args()

    chosen = MUTATIONS
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - {m.name for m in MUTATIONS})
        if unknown:
            print(f"unknown mutation(s) {unknown}; see --list", file=sys.stderr)
            return 2
        chosen = [m for m in MUTATIONS if m.name in wanted]
    if args.list:
        for m in chosen:
            print(f"{m.name:36s} {m.file:34s} {m.what}")
        return 0
    problems = check_all(chosen)
    if problems or args.check:
        print("\n".join(problems) or f"all {len(chosen)} mutations apply", file=sys.stderr)
        return 1 if problems else 0

    with tempfile.TemporaryDirectory(prefix="mutants-") as copy:
        copy_repository(copy)
        baseline = sorted({t for m in chosen for t in m.tests})
        status, detail, seconds = run_tests(copy, baseline, args.timeout * 2)
        print(
            f"baseline: {len(baseline)} test selections {status.replace('survived', 'pass')} in "
            f"{seconds:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        if status != "survived":
            print(f"the unmutated code fails {detail}: fix that first", file=sys.stderr)
            return 2
        outcomes = []
        for n, m in enumerate(chosen, 1):
            path = os.path.join(copy, m.file)
            with open(path) as f:
                original = f.read()
            with open(path, "w") as f:
                f.write(apply(original, m))
            try:
                status, detail, seconds = run_tests(copy, m.tests, args.timeout)
            finally:
                with open(path, "w") as f:
                    f.write(original)
            outcomes.append(Outcome(m, status, detail, seconds))
            print(
                f"[{n}/{len(chosen)}] {m.name}: {status} {detail} ({seconds:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    text = report(outcomes)
    print(text)
    if args.report:
        with open(args.report, "w") as f:
            f.write(text)
    scored = [o for o in outcomes if not o.mutation.equivalent]
    score = sum(o.status not in ("survived", "no tests ran") for o in scored) / max(1, len(scored))
    return 0 if score >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
