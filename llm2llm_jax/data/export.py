"""The augmented dataset as an artifact: the run's final training set, with provenance and a data card.

At the end of a run, `dataset/` in the run directory holds

    train.jsonl   the last iteration's training set: the seed examples and every kept example, each with
                  id, input, output, origin (seed, teacher, eda, pool), parent_id and iteration (when it
                  entered the set); kept examples also say which teacher wrote them and that the filters
                  kept them (`filters`: the checks passed)
    tfds/         the same examples as a tfds array_record dataset (data/shards.py's builder and fields)
    README.md     the data card: task, counts per class and per origin, the teacher and its settings, the
                  filters and what they dropped per iteration, and the run's config

so a user can fine-tune elsewhere: `datasets.load_dataset("json", data_files="RUN/dataset/train.jsonl")`
or `tfds.builder_from_directory(...)` (the card gives the path). Files are rewritten only when their
content changes, so summarising a finished run writes nothing.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Sequence

from llm2llm_jax.common import files
from llm2llm_jax.common.files import write_if_changed
from llm2llm_jax.data import shards
from llm2llm_jax.data.tasks import task_from_config


def dataset_dir(workdir: str) -> str:
    return os.path.join(workdir, "dataset")


def tfds_path(workdir: str, iteration: int) -> str:
    return shards._path(os.path.join(dataset_dir(workdir), "tfds"), iteration)


def final_examples(workdir: str, rows: Sequence[dict], config) -> list[dict]:
    """The training set of the run's last finished iteration, with each kept example's teacher and filters."""
    last = rows[-1]["iteration"]
    examples = shards.read_iteration(os.path.join(workdir, "shards"), last)
    teacher = f"{config.teacher.kind}:{config.teacher.model}"
    out = []
    for ex in examples:
        record = {k: ex[k] for k in ("id", "input", "output", "origin", "parent_id", "iteration")}
        if ex["origin"] != "seed":
            record["teacher"] = teacher if ex["origin"] == "teacher" else ex["origin"]
            record["filters"] = "kept"
        out.append(record)
    return out


def write_dataset(workdir: str, rows: Sequence[dict], config, mode: str, filters: Sequence[str]) -> None:
    """dataset/train.jsonl, dataset/tfds/ and dataset/README.md for the finished iterations in `rows`; `mode`
    is how the teacher was asked (teacher.mode resolved for the task), `filters` what every kept example
    passed."""
    if not rows:
        return
    examples = final_examples(workdir, rows, config)
    out = dataset_dir(workdir)
    lines = "".join(json.dumps(ex, ensure_ascii=False) + "\n" for ex in examples)
    write_if_changed(os.path.join(out, "train.jsonl"), lines.encode("utf-8"))
    last = rows[-1]["iteration"]
    shards.write_iteration(os.path.join(out, "tfds"), last, examples)  # skipped when already complete
    write_if_changed(
        os.path.join(out, "README.md"),
        data_card(workdir, rows, config, examples, mode, filters).encode("utf-8"),
    )


def data_card(
    workdir: str, rows: Sequence[dict], config, examples: Sequence[dict], mode: str, filters: Sequence[str]
) -> str:
    by_origin = collections.Counter(ex["origin"] for ex in examples)
    by_class = (
        collections.Counter(ex["output"] for ex in examples)
        if task_from_config(config).is_classification
        else None
    )
    t = config.teacher
    drops = collections.Counter()
    for r in rows:
        drops.update(r.get("drops", {}))
    tfds_dir = os.path.relpath(tfds_path(workdir, rows[-1]["iteration"]), workdir)
    lines = [
        f"# LLM2LLM training set: task {config.task}, method {config.method}",
        "",
        f"{len(examples)} examples: "
        + ", ".join(f"{n} {o}" for o, n in sorted(by_origin.items()))
        + f". The training set of iteration {rows[-1]['iteration']}, the run's last.",
        "",
        'Load it with `datasets.load_dataset("json", data_files="dataset/train.jsonl")`, or with tfds: '
        f'`tfds.builder_from_directory("{tfds_dir}")` (paths relative to the run directory).',
        "",
        "Fields: `id`; `input`; `output` (the gold label or answer); `origin` (seed, teacher, eda or pool); "
        "`parent_id` (the example a new one was made from); `iteration` (the iteration whose training set "
        "it first entered); for new examples `teacher` and `filters`.",
        "",
    ]
    if by_class is not None:
        lines += [
            "## Examples per class",
            "",
            "| class | seed | added | total |",
            "| --- | ---: | ---: | ---: |",
        ]
        seeds = collections.Counter(ex["output"] for ex in examples if ex["origin"] == "seed")
        for label, n in sorted(by_class.items()):
            lines.append(f"| {label} | {seeds[label]} | {n - seeds[label]} | {n} |")
        lines.append("")
    lines += [
        "## How new examples were made",
        "",
        f"Method `{config.method}`; teacher `{t.kind}` model `{t.model}` (temperature {t.temperature}, "
        f"top_p {t.top_p}), mode `{mode}`, {config.teacher.per_example} new example(s) asked per "
        f"parent in {config.teacher.requests_per_example} request(s), same_label "
        f"{config.teacher.same_label}, verify `{config.filters.verify}`; parents: "
        f"`augment.parents={config.augment.parents}`, "
        f"`augment.from_augmented={config.augment.from_augmented}`.",
        "",
        "Every new example passed the filters that apply to this task and these settings "
        "(llm2llm_jax/teacher/filters.py): " + "; ".join(filters) + ".",
        "",
        "| iteration | parents asked about | candidates | kept | dropped |",
        "| ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        if "candidates" in r:
            dropped = ", ".join(f"{k} {v}" for k, v in r.get("drops", {}).items() if v) or "none"
            lines.append(
                f"| {r['iteration']} | {r.get('teacher_requests', 0)} | {r['candidates']} | "
                f"{r['new_examples']} | {dropped} |"
            )
    total = ", ".join(f"{k} {v}" for k, v in drops.items() if v) or "none"
    lines += [
        "",
        f"Dropped over the run: {total}.",
        "",
        "## The run's config",
        "",
        "```json",
        json.dumps(files.read_json(os.path.join(workdir, "config.json")), indent=1, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)
