"""Host work per iteration at paper-scale seed sets: the real controller with a stand-in student.

The controller, its data stage, filters, shards, reports and dataset export are the real ones; the student
is a stand-in (training returns at once; evaluation gets a fixed 30% of the seed examples wrong, chosen by a
hash of their text) and the teacher is the tests' scripted one, so every second measured is host work. The
data are synthetic TREC-style questions over a Zipf-distributed vocabulary (common words are common, as in
text); each teacher reply holds four items per wrong example: a verbatim copy (a duplicate), one word
changed (a duplicate once the question has more than 20 words), three words changed with a tail, and a
new question that shares its first words with the parent.

Prints, per seed-set size, the host seconds of each iteration by stage (filtering: the filter's index and
every check; dedup: the ROUGE-L deduplication within it, per candidate; teacher: the scripted calls, their
cache and parsing; shards; the data stage; the report and dataset export at the end) and the whole run.

  python benchmarks/controller_scale.py [--sizes 1000,5000,20000 --test 1000 --iterations 3 --max-parents '']
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import json
import os
import random
import re
import sys
import tempfile
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the scripted teacher (a test double) lives there
sys.path.insert(0, ROOT)

LABELS = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
OPENERS = ("What", "Who", "Where", "How many", "When", "Why", "Which", "How")
WRONG_SHARE = 0.3

_seconds: collections.Counter = collections.Counter()  # stage -> host seconds in the current iteration
_counts: collections.Counter = collections.Counter()


def vocabulary(rng: random.Random, size: int = 4000) -> list[str]:
    syllables = [a + b for a in "bcdfghklmnprstvwz" for b in "aeiou"]
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))))
    return sorted(words)


class Words:
    """Draws words with probability proportional to 1 / rank (Zipf), as words in text are."""

    def __init__(self, rng: random.Random):
        self.rng, self.vocab = rng, vocabulary(rng)
        self.weights = [1.0 / (r + 1) for r in range(len(self.vocab))]

    def draw(self, n: int) -> list[str]:
        return self.rng.choices(self.vocab, weights=self.weights, k=n)

    def question(self) -> str:
        return " ".join([self.rng.choice(OPENERS), *self.draw(self.rng.randint(5, 28)), "?"])


def write_data(directory: str, size: int, test: int) -> tuple[str, str]:
    words = Words(random.Random(0))
    rows, seen = [], set()
    while len(rows) < size + test:
        q = words.question()
        if q not in seen:
            seen.add(q)
            rows.append({"input": q, "output": LABELS[len(rows) % len(LABELS)]})
    paths = []
    for name, part in (("train", rows[:size]), ("test", rows[size:])):
        paths.append(os.path.join(directory, f"{name}.jsonl"))
        with open(paths[-1], "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in part)
    return paths[0], paths[1]


def teacher_answer(request) -> str:
    """Four items for the wrong example in the request (see the module docstring)."""
    last = request.turns[-1]["content"]
    text = re.search(r"^Input: (.*)$", last, re.M).group(1)
    label = re.search(r"^Correct output: (.*)$", last, re.M).group(1)
    rng = random.Random(request.seed * 7919 + zlib.crc32(text.encode()))
    words = text.split()

    def changed(k: int) -> list[str]:
        out = list(words)
        for pos in rng.sample(range(1, len(out) - 1), min(k, len(out) - 2)):
            out[pos] = f"zo{rng.randrange(10**6)}"
        return out

    items = [
        text,
        " ".join(changed(1)),
        " ".join(changed(3) + ["in", "short"]),
        " ".join(words[:3] + [f"ka{rng.randrange(10**6)}" for _ in range(8)] + ["?"]),
    ]
    return "\n".join(f"{n}. Input: {q}\n   Output: {label}" for n, q in enumerate(items, 1))


@contextlib.contextmanager
def timed(stage: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        _seconds[stage] += time.perf_counter() - start


def wrap(owner, name: str, stage: str) -> None:
    """Add the time of every call of owner.name to `stage`."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def call(*args, **kwargs):
        with timed(stage):
            return original(*args, **kwargs)

    setattr(owner, name, call)


def instrument() -> None:
    from llm2llm_jax.run import controller, steps
    from llm2llm_jax.teacher import filters

    wrap(filters.AugmentationFilter, "__init__", "filtering")
    wrap(filters.AugmentationFilter, "apply", "filtering")
    original = filters.AugmentationFilter.is_duplicate

    def is_duplicate(self, text):
        _counts["dedup_candidates"] += 1
        with timed("dedup"):
            return original(self, text)

    filters.AugmentationFilter.is_duplicate = is_duplicate
    wrap(controller.Llm2llmRun, "_augment", "augment")  # teacher + filtering
    wrap(steps.shards, "write_iteration", "shards")
    wrap(steps.shards, "read_iteration", "shards")
    wrap(steps, "data", "data")
    wrap(controller, "write_outputs", "reports")
    wrap(controller, "write_dataset", "dataset export")


def stand_in_run(config, teacher):
    from llm2llm_jax.run import controller

    class StandInRun(controller.Llm2llmRun):
        """Training returns at once; evaluation is right on 70% of examples, by a hash of their text."""

        def __init__(self, config, teacher):
            super().__init__(config, teacher=teacher)
            self.keeper = None
            self.per_iteration: list[dict] = []

        def train(self, i, train_set):
            return None, {"steps": 0, "examples": len(train_set), "truncation": {}, "final_loss": None}

        def evaluate(self, params, examples, desc):
            out = []
            for ex in examples:
                right = zlib.crc32(ex["input"].encode()) % 1000 >= WRONG_SHARE * 1000
                label = ex["output"] if right else LABELS[(LABELS.index(ex["output"]) + 1) % len(LABELS)]
                out.append({"id": ex["id"], "generation": " " + label, "prediction": label, "correct": right})
            return out

        def _iteration(self, i):
            seconds, counts, start = _seconds.copy(), _counts.copy(), time.perf_counter()
            row = super()._iteration(i)
            spent = {k: v - seconds[k] for k, v in _seconds.items()}
            asked = {k: v - counts[k] for k, v in _counts.items()}
            self.per_iteration.append(
                {"iteration": i, "seconds": time.perf_counter() - start, **spent, **asked, "row": row}
            )
            return row

    return StandInRun(config, teacher)


def one_size(size: int, test: int, iterations: int, root: str, max_parents: str) -> dict:
    from oracle_run import loop_harness
    from scripted_teacher import ScriptedBackend

    from llm2llm_jax.teacher.base import TeacherSettings
    from llm2llm_jax.teacher.cache import DiskCache

    data_dir = os.path.join(root, f"data-{size}")
    os.makedirs(data_dir)
    train_path, test_path = write_data(data_dir, size, test)
    config = loop_harness.small_config(os.path.join(root, f"run-{size}"), iterations=iterations)
    config.data.source = "file"
    config.data.train_path, config.data.test_path = train_path, test_path
    config.data.seed_count, config.data.test_count, config.data.test_limit = size, test, 0
    config.teacher.per_example = 4
    config.augment.max_parents = max_parents
    config.teacher.concurrency = 1
    config.tensorboard = False
    config.export.student = False
    teacher = ScriptedBackend(
        TeacherSettings(kind="scripted", concurrency=1),
        DiskCache(os.path.join(config.workdir, "teacher_cache")),
        script=teacher_answer,
    )
    run = stand_in_run(config, teacher)
    start = time.perf_counter()
    run.run()
    return {"size": size, "whole": time.perf_counter() - start, "iterations": run.per_iteration, **_seconds}


def report(result: dict) -> None:
    print(f"\n{result['size']} seed examples: whole run {result['whole']:.1f} s")
    print(f"  {'iter':>4} {'total':>7} {'filter':>7} {'dedup':>7} {'ms/cand':>8} {'teacher':>7} {'shards':>7}"
          f" {'kept':>6} {'asked':>6}")  # fmt: skip
    for it in result["iterations"]:
        row, filt = it["row"], it.get("filtering", 0.0)
        per = 1000 * it.get("dedup", 0.0) / max(it.get("dedup_candidates", 0), 1)
        teacher = it.get("augment", 0.0) - filt
        print(
            f"  {it['iteration']:>4} {it['seconds']:7.2f} {filt:7.2f} {it.get('dedup', 0.0):7.2f} {per:8.3f}"
            f" {teacher:7.2f} {it.get('shards', 0.0):7.2f} {row.get('new_examples', 0):>6}"
            f" {row.get('asked', 0):>6}"
        )
    rest = {k: result.get(k, 0.0) for k in ("data", "reports", "dataset export")}
    print("  outside iterations: " + ", ".join(f"{k} {v:.2f} s" for k, v in rest.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,5000,20000")
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--max-parents", default="", help="config.augment.max_parents (to time a slow filter)")
    ap.add_argument("--json", default="", help="also write the figures here")
    args = ap.parse_args()
    instrument()
    results = []
    with tempfile.TemporaryDirectory() as root:
        for size in (int(s) for s in args.sizes.split(",")):
            _seconds.clear()
            _counts.clear()
            results.append(one_size(size, args.test, args.iterations, root, args.max_parents))
            report(results[-1])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
    main()
