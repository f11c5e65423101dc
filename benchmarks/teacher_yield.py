"""How much of what the teacher is asked for survives the filters? Teacher yield (kept / asked) per setting.

For each seed, the student is fine-tuned once on that seed's seed set (plain fine-tuning, iteration 0 of
any run; read from --shared_results when it is already there) and the seed examples it gets wrong become the
parents (--parents=all: every seed example, for tasks where it gets nearly all of them right). Then, for
each teacher setting, the run's own augmenter and filters make new examples from exactly those parents, and
the benchmark prints requests, examples asked, parsed, kept, the yield, the drops by reason, the kept
examples per class and a few of them. Each setting answers into its own teacher cache, so a rerun
reads the answers back instead of sampling them again.

  python benchmarks/teacher_yield.py --config=configs/default.py --seeds=0,1,2 \
      --variants=before,label_conditioned,label_conditioned_split [--config.FIELD=VALUE ...]

A variant is a preset name (below) or `name:field=value,field=value` with teacher.* / filters.* fields.
"""

import ast
import collections
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/default.py", "An ml_collections config file.", lock_config=False
)
flags.DEFINE_string("seeds", "0,1,2", "seeds: each one's seed set, fine-tuned once")
flags.DEFINE_string(
    "variants",
    "before,label_conditioned,label_conditioned_split",
    "teacher settings to compare: preset names or name:field=value,...",
)
flags.DEFINE_string("workdir", "runs/teacher_yield", "where the fine-tunes, caches and the result JSON go")
flags.DEFINE_string(
    "shared_results", "", "a result store to read iteration 0 from (default: WORKDIR/results)"
)
flags.DEFINE_integer("samples", 3, "kept examples to print per variant")
flags.DEFINE_enum(
    "parents",
    "wrong",
    ["wrong", "all"],
    "grow from the seed examples plain fine-tuning gets wrong (what a run does), or from all of them "
    "(a larger sample of the teacher where the student gets nearly every seed example right)",
)

# The settings compared by default. 'before' is how the offline default asked before label-conditioned
# generation: whole examples, 3 in one request of up to 96 tokens, kept only when labelled as the failed
# example's class. The split variant keeps the config's max_output_tokens (one example per request).
PRESETS = {
    "before": {
        "teacher.mode": "example",
        "teacher.same_label": True,
        "teacher.requests_per_example": 1,
        "teacher.max_output_tokens": 96,
    },
    "label_conditioned": {
        "teacher.mode": "label_conditioned",
        "teacher.requests_per_example": 1,
        "teacher.max_output_tokens": 96,
    },
    "label_conditioned_split": {"teacher.mode": "label_conditioned", "teacher.requests_per_example": -1},
}


def parse_variant(spec: str) -> tuple[str, dict]:
    if spec in PRESETS:
        return spec, dict(PRESETS[spec])
    name, _, fields = spec.partition(":")
    out = {}
    for item in filter(None, fields.split(",")):
        key, _, raw = item.partition("=")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        out[key.strip()] = value
    return name, out


def apply(config, fields: dict):
    c = config.copy_and_resolve_references()
    for key, value in fields.items():
        section, _, field = key.partition(".")
        if field == "requests_per_example" and value == -1:  # one request per example asked for
            value = c.teacher.per_example
        c[section][field] = value
    return c


def fine_tuned(config, seed: int, workdir: str, shared: str) -> str:
    """The run directory of plain fine-tuning on this seed's seed set (computed, or read from `shared`)."""
    from llm2llm_jax.run import controller as loop

    c = config.copy_and_resolve_references()
    c.method, c.seed, c.iterations, c.progress = "finetune", seed, 1, False
    c.workdir = os.path.join(workdir, "finetune", f"seed{seed}")
    c.shared_results = shared
    loop.run_from_config(c)
    return c.workdir


def measure(config, run_dir: str, out_dir: str, model) -> dict:
    """One setting on one seed: the augmenter's kept examples and stats for the wrong seed examples."""
    from llm2llm_jax.augment.base import Context, make_filter
    from llm2llm_jax.augment.methods import METHODS
    from llm2llm_jax.common.files import read_jsonl
    from llm2llm_jax.data.tasks import get_task
    from llm2llm_jax.teacher.factory import backend_from_config

    task = get_task(config.task, config.custom_task.to_dict() if config.task == "custom" else None)
    seed_set = read_jsonl(os.path.join(run_dir, "data", "seed.jsonl"))
    test_set = read_jsonl(os.path.join(run_dir, "data", "test.jsonl"))
    predictions = {
        p["id"]: p for p in read_jsonl(os.path.join(run_dir, "iter_0000", "predictions_seed.jsonl"))
    }
    wrong = [ex for ex in seed_set if flags.FLAGS.parents == "all" or not predictions[ex["id"]]["correct"]]
    os.makedirs(out_dir, exist_ok=True)
    teacher = backend_from_config(config.teacher, out_dir, student=lambda: model, say=lambda m: None)
    judge = (
        teacher
        if not config.filters.judge_model
        else backend_from_config(
            config.teacher,
            out_dir,
            student=lambda: model,
            model=config.filters.judge_model,
            say=lambda m: None,
        )
    )
    ctx = Context(task, config, seed_set, lambda: teacher, say=lambda m: None, judge=lambda: judge)
    method = METHODS[config.method](ctx)
    start = time.perf_counter()
    kept, stats = method.augment(0, wrong, predictions, make_filter(task, config, seed_set, test_set))
    return {
        "parents": len(wrong),
        "kept": kept,
        "stats": stats,
        "seconds": time.perf_counter() - start,
        "spent": dict(teacher.budget.spent),
    }


def main(argv):
    import jax

    from llm2llm_jax.model.loading import load_from_config

    logging.set_verbosity(logging.WARNING)  # tfds and rouge-score's info lines
    config = _CONFIG.value
    seeds = [int(s) for s in flags.FLAGS.seeds.split(",") if s.strip()]
    variants = [
        parse_variant(v.strip())
        for v in flags.FLAGS.variants.split(";" if ":" in flags.FLAGS.variants else ",")
        if v.strip()
    ]
    workdir = flags.FLAGS.workdir
    shared = flags.FLAGS.shared_results or os.path.join(workdir, "results")
    runs = {s: fine_tuned(config, s, workdir, shared) for s in seeds}
    cfg, params, tokenizer = load_from_config(config.model, progress=False)
    model = (cfg.with_kernels_for(jax.devices()), params, tokenizer)  # as the run resolves it for its mesh
    results = {}
    for name, fields in variants:
        c = apply(config, fields)
        per_seed = {
            s: measure(c, runs[s], os.path.join(workdir, "teacher", name, f"seed{s}"), model) for s in seeds
        }
        results[name] = {
            "fields": {k: c[k.split(".")[0]][k.split(".")[1]] for k in fields},
            "per_seed": per_seed,
        }
    report(config, results, seeds)
    summary = {
        name: {
            "fields": r["fields"],
            "per_seed": {
                s: {k: v for k, v in m.items() if k != "kept"} | {"kept": len(m["kept"])}
                for s, m in r["per_seed"].items()
            },
        }
        for name, r in results.items()
    }
    with open(os.path.join(workdir, "teacher_yield.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"\nwritten: {os.path.join(workdir, 'teacher_yield.json')}")


def report(config, results: dict, seeds) -> None:
    parents = (
        "the seed examples plain fine-tuning gets wrong"
        if flags.FLAGS.parents == "wrong"
        else "every seed example"
    )
    print(
        f"\nTeacher yield on {config.task}, seeds {','.join(map(str, seeds))} (parents: {parents}), teacher "
        f"{config.teacher.kind} {config.teacher.model or ''}"
    )
    print(
        f"{'setting':<26} {'parents':>7} {'requests':>8} {'asked':>6} {'parsed':>6} {'kept':>5} {'yield':>6} "
        f" drops by reason"
    )
    for name, r in results.items():
        runs = r["per_seed"].values()
        total = collections.Counter()
        drops = collections.Counter()
        for m in runs:
            total.update(
                parents=m["parents"],
                requests=m["stats"].get("requests", 0),
                asked=m["stats"].get("asked", 0),
                parsed=m["stats"].get("candidates", 0),
                kept=len(m["kept"]),
            )
            drops.update({k: v for k, v in m["stats"]["drops"].items() if v})
        rate = total["kept"] / max(1, total["asked"])
        dropped = ", ".join(f"{k} {v}" for k, v in drops.most_common()) or "none"
        print(
            f"{name:<26} {total['parents']:>7} {total['requests']:>8} {total['asked']:>6} "
            f"{total['parsed']:>6} "
            f"{total['kept']:>5} {rate:>6.0%}  {dropped}"
        )
    for name, r in results.items():
        kept = [ex for m in r["per_seed"].values() for ex in m["kept"]]
        classes = collections.Counter(ex["output"] for ex in kept)
        print(
            f"\n{name}: {r['fields']}; kept per class: {dict(sorted(classes.items()))}; "
            f"{sum(m['seconds'] for m in r['per_seed'].values()):.0f} s of teacher time"
        )
        for ex in kept[: flags.FLAGS.samples]:
            print(f"  [{ex['output']}] {ex['input'][:150]}")


if __name__ == "__main__":
    app.run(main)
