"""Comparing methods over seeds: one run per (method, seed) under an experiment directory, and the comparison.

    python launch/compare.py --config=configs/default.py \
        --config.compare.methods=finetune,llm2llm,auggpt,eda --config.compare.seeds=0,1,2,3,4

Experiment directory (config.workdir): METHOD/seedN/ (a run directory each, resumable like any run),
results/ (fine-tune + evaluation results shared by the runs: iteration 0, plain fine-tuning on a seed's
seed set, is computed once per seed and read by every method), comparison.json, comparison.md and
comparison.png.

Each seed's runs go in the order finetune, llm2llm, then the others, so that the teacher-using baselines
get the budget LLM2LLM used: with `compare.equal_budget`, AugGPT and EDA grow from as many seed examples
per iteration as LLM2LLM sent to the teacher at that iteration (a random subset, `augment.max_parents`).
The statistics (run/stats.py): per method the final test accuracy's mean, sd and 95% interval
over seeds; per method against plain fine-tuning the paired difference per seed, its interval, and
paired t and Wilcoxon tests.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable, Sequence

from llm2llm_jax.augment.methods import METHODS
from llm2llm_jax.common import files
from llm2llm_jax.common.console import say
from llm2llm_jax.common.errors import ConfigError
from llm2llm_jax.run import stats
from llm2llm_jax.run.controller import run_from_config
from llm2llm_jax.run.selection import select
from llm2llm_jax.teacher.budget import read_spend


def parse_list(config, key: str, cast=str) -> list:
    raw = str(config.compare[key])
    try:
        values = [cast(v.strip()) for v in raw.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise ConfigError(
            f"config.compare.{key}={raw!r}: give a comma-separated list (e.g. "
            f"{'0,1,2,3,4' if cast is int else 'finetune,llm2llm,auggpt,eda'})"
        )
    if len(set(values)) != len(values):
        raise ConfigError(f"config.compare.{key}={raw!r}: a value is repeated")
    return values


def plan(config) -> tuple[list[str], list[int]]:
    """(methods in run order, seeds), checked. A seed's runs go baseline first, then the method whose parents
    set the others' budget (LLM2LLM), then the rest in the order given."""
    methods, seeds = parse_list(config, "methods"), parse_list(config, "seeds", int)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(
            f"config.compare.methods: {unknown[0]!r} is not a method; choose from {tuple(METHODS)}"
        )
    return sorted(methods, key=lambda m: (not METHODS[m].baseline, not METHODS[m].sets_budget)), seeds


def run_dir(experiment: str, method: str, seed: int) -> str:
    return os.path.join(experiment, method, f"seed{seed}")


def run_config(config, method: str, seed: int, max_parents: str = ""):
    """The config of one run of the experiment."""
    c = config.copy_and_resolve_references()
    experiment = files.absolute(config.workdir)
    c.job, c.method, c.seed = "llm2llm", method, seed
    c.workdir = run_dir(experiment, method, seed)
    c.shared_results = os.path.join(experiment, "results")
    c.augment.max_parents = max_parents
    c.export.student = False  # a comparison's runs are evidence: no student is kept or exported
    return c


def parents_used(rows: Sequence[dict]) -> str:
    """How many seed examples LLM2LLM grew from per iteration, as augment.max_parents ('14,4,4'; 0 where it
    asked nothing). Rows of runs made before `parents` was recorded had one teacher request per parent."""
    return ",".join(str(r.get("parents", r.get("teacher_requests", 0))) for r in rows if "note" not in r)


def run_experiment(config, run: Callable = None) -> dict:
    """Run (or resume, or read) every (method, seed) run, then write the comparison; returns it."""
    run = run or run_from_config
    methods, seeds = plan(config)
    experiment = files.absolute(config.workdir)
    found: dict = {m: {} for m in methods}
    for seed in seeds:
        budget = ""
        for method in methods:
            capped = (
                config.compare.equal_budget
                and METHODS[method].budgeted
                and any(METHODS[m].sets_budget for m in methods)
            )
            say(
                f"compare: {method}, seed {seed}"
                + (f" (parents per iteration as LLM2LLM's: {budget})" if capped else "")
            )
            rows = run(run_config(config, method, seed, budget if capped else ""))
            found[method][seed] = rows
            if METHODS[method].sets_budget:
                budget = parents_used(rows)
    comparison = summarize(
        found, {m: {s: read_spend(run_dir(experiment, m, s)) for s in seeds} for m in methods}
    )
    comparison["budget_rule"] = (
        "AugGPT and EDA grow from as many seed examples per iteration as LLM2LLM sent to the "
        "teacher at that iteration"
        if config.compare.equal_budget
        else "no budget matching (compare.equal_budget=False)"
    )
    write_comparison(experiment, comparison, config)
    return comparison


def _final(rows: Sequence[dict]) -> float:
    return rows[-1]["test_accuracy"]


def _selected(rows: Sequence[dict]) -> tuple[int, float]:
    """(the iteration the run delivers, its test accuracy): chosen by dev accuracy (run/selection.py)."""
    iteration, _ = select(rows)
    return iteration, next(r["test_accuracy"] for r in rows if r["iteration"] == iteration)


def _has_dev(rows: Sequence[dict]) -> bool:
    return all("dev_accuracy" in r for r in rows)


def curve(rows: Sequence[dict], iterations: int) -> list[float]:
    """Test accuracy per iteration; a run that stopped early keeps its last model's accuracy."""
    values = [r["test_accuracy"] for r in rows]
    return values + [values[-1]] * (iterations - len(values))


def _clean(x):
    """JSON has no NaN: an interval that cannot be computed (one seed) is null."""
    return None if isinstance(x, float) and math.isnan(x) else x


def summarize(found: dict, spend: dict) -> dict:
    """The comparison's numbers: found[method][seed] = the run's metrics rows; spend[method][seed] = its
    ledger."""
    iterations = max(len(rows) for by_seed in found.values() for rows in by_seed.values())
    baseline = next((found[m] for m in found if METHODS[m].baseline), None)
    methods = {
        m: _method(found[m], spend[m], iterations, None if METHODS[m].baseline else baseline) for m in found
    }
    return {"methods": methods, "iterations": iterations}


def _paired(a: Sequence[float], b: Sequence[float]) -> dict:
    return {k: _clean(v) for k, v in stats.paired(a, b).as_dict().items()}


def _method(by_seed: dict, spend: dict, iterations: int, baseline: dict | None) -> dict:
    """One method's entry: its final accuracies and their summary, its teacher use, its mean curve, and
    (`baseline`: plain fine-tuning's runs, for a method that is not the baseline) the paired difference."""
    seeds = sorted(by_seed)
    finals = [_final(by_seed[s]) for s in seeds]
    per_run = lambda count: sum(count(s) for s in seeds) / len(seeds)  # noqa: E731
    curves = [curve(by_seed[s], iterations) for s in seeds]
    entry = {
        "seeds": seeds,
        "final_test_accuracy": {str(s): f for s, f in zip(seeds, finals)},
        "summary": {k: _clean(v) for k, v in stats.summarize(finals).as_dict().items()},
        "teacher_requests": per_run(lambda s: sum(r.get("teacher_requests", 0) for r in by_seed[s])),
        "kept_examples": per_run(lambda s: sum(r.get("new_examples", 0) for r in by_seed[s])),
        "teacher_tokens": per_run(
            lambda s: spend[s].get("input_tokens", 0) + spend[s].get("output_tokens", 0)
        ),
        "curve": [
            {k: _clean(v) for k, v in stats.summarize([c[it] for c in curves]).as_dict().items()}
            for it in range(iterations)
        ],
    }
    paired_seeds = [s for s in seeds if baseline and s in baseline]
    if paired_seeds:
        entry["vs_finetune"] = {
            "seeds": paired_seeds,
            **_paired(
                [_final(by_seed[s]) for s in paired_seeds], [_final(baseline[s]) for s in paired_seeds]
            ),
        }
    if all(_has_dev(by_seed[s]) for s in seeds):
        entry["dev_selected"] = _dev_selected(by_seed, baseline)
    return entry


def _dev_selected(by_seed: dict, baseline: dict | None) -> dict:
    """The test accuracy of the iteration each run selects by dev accuracy, beside the last iteration's:
    paired against the last iteration and against plain fine-tuning (which has one iteration)."""
    seeds = sorted(by_seed)
    picked = {s: _selected(by_seed[s]) for s in seeds}
    accs = [picked[s][1] for s in seeds]
    out = {
        "iteration": {str(s): picked[s][0] for s in seeds},
        "test_accuracy": {str(s): picked[s][1] for s in seeds},
        "summary": {k: _clean(v) for k, v in stats.summarize(accs).as_dict().items()},
        "vs_last": _paired(accs, [_final(by_seed[s]) for s in seeds]),
    }
    paired_seeds = [s for s in seeds if baseline and s in baseline]
    if paired_seeds:
        out["vs_finetune"] = {
            "seeds": paired_seeds,
            **_paired([picked[s][1] for s in paired_seeds], [_final(baseline[s]) for s in paired_seeds]),
        }
    return out


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _interval(low, high) -> str:
    return "n/a" if low is None else f"[{100 * low:.1f}, {100 * high:.1f}]"


def _p(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def table(comparison: dict) -> list[str]:
    """The comparison as markdown table rows (header included)."""
    lines = [
        "| method | seeds | final test accuracy, mean % [95% CI] | sd | vs fine-tuning, paired mean "
        "difference [95% CI] | paired t p | Wilcoxon p | teacher requests | kept examples | teacher tokens |",
        "| --- | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m, e in comparison["methods"].items():
        s, v = e["summary"], e.get("vs_finetune")
        diff = (
            f"{100 * v['diff_mean']:+.1f} {_interval(v['diff_low'], v['diff_high'])}" if v else "(baseline)"
        )
        lines.append(
            f"| {m} | {s['n']} | {_pct(s['mean'])} {_interval(s['low'], s['high'])} | {100 * s['sd']:.1f} | "
            f"{diff} | {_p(v['t_p']) if v else ''} | {_p(v['wilcoxon_p']) if v else ''} | "
            f"{e['teacher_requests']:.0f} | {e['kept_examples']:.0f} | {e['teacher_tokens']:.0f} |"
        )
    return lines


def _paired_cell(p: dict | None) -> str:
    if not p:
        return "(baseline) | |"
    return f"{100 * p['diff_mean']:+.1f} {_interval(p['diff_low'], p['diff_high'])} | {_p(p['t_p'])} |"


def dev_table(comparison: dict) -> list[str]:
    """The dev-selected students' test accuracy beside the last iteration's, as markdown rows (none
    without a dev split)."""
    methods = {m: e["dev_selected"] for m, e in comparison["methods"].items() if "dev_selected" in e}
    if not methods:
        return []
    lines = [
        "| method | dev-selected test accuracy, mean % [95% CI] | selected iteration per seed | "
        "minus last iteration, paired [95% CI] | t p | vs fine-tuning, paired [95% CI] | t p |",
        "| --- | --- | --- | --- | ---: | --- | ---: |",
    ]
    for m, d in methods.items():
        s = d["summary"]
        lines.append(
            f"| {m} | {_pct(s['mean'])} {_interval(s['low'], s['high'])} | "
            f"{', '.join(str(i) for i in d['iteration'].values())} | {_paired_cell(d['vs_last'])} "
            f"{_paired_cell(d.get('vs_finetune'))}"
        )
    return lines


def write_comparison(experiment: str, comparison: dict, config) -> None:
    """comparison.json, comparison.md (the table, per-seed finals, how to read it) and comparison.png."""
    files.write_if_changed(
        os.path.join(experiment, "comparison.json"),
        (json.dumps(comparison, indent=1, sort_keys=True) + "\n").encode("utf-8"),
    )
    methods = comparison["methods"]
    seeds = sorted({s for e in methods.values() for s in e["seeds"]})
    lines = [
        f"# Comparison on {config.task}: {', '.join(methods)} over seeds {', '.join(map(str, seeds))}",
        "",
        *table(comparison),
        "",
        "Final test accuracy is the last iteration's (a run that stopped early keeps its last model). The "
        "interval over seeds is Student's t; the paired difference is each method's final accuracy minus "
        "plain fine-tuning's on the same seed (the same seed set, test set and iteration-0 fine-tune). "
        f"Teacher requests, kept examples and tokens are per run, averaged over seeds. Budget: "
        f"{comparison.get('budget_rule', '')}.",
        "",
        "| seed | " + " | ".join(methods) + " |",
        "| ---: | " + " | ".join("---:" for _ in methods) + " |",
    ]
    for s in seeds:
        cells = [_pct(methods[m]["final_test_accuracy"].get(str(s))) for m in methods]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    if dev := dev_table(comparison):
        lines += [
            "",
            "## The student each run delivers: selected by dev accuracy",
            "",
            *dev,
            "",
            "Each run keeps the iteration with the best dev accuracy (ties: the earlier); the table gives "
            "its test accuracy, paired per seed against the same run's last iteration and against plain "
            "fine-tuning. The test set chose nothing.",
        ]
    files.write_if_changed(
        os.path.join(experiment, "comparison.md"), ("\n".join(lines) + "\n").encode("utf-8")
    )
    files.write_if_changed(os.path.join(experiment, "comparison.png"), _plot(comparison, config))


def _plot(comparison: dict, config) -> bytes:
    """Mean test accuracy per iteration with its 95% band, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    its = list(range(comparison["iterations"]))
    for m, e in comparison["methods"].items():  # plain fine-tuning is one model: a flat line at its accuracy
        ax.plot(its, [100 * c["mean"] for c in e["curve"]], "--" if METHODS[m].baseline else "o-", label=m)
        if all(c["low"] is not None for c in e["curve"]):
            ax.fill_between(
                its, [100 * c["low"] for c in e["curve"]], [100 * c["high"] for c in e["curve"]], alpha=0.15
            )
    ax.set_xlabel("iteration")
    ax.set_ylabel("test accuracy (%), mean and 95% CI over seeds")
    ax.set_xticks(its)
    ax.legend(loc="lower right")
    ax.set_title(
        f"{config.task}: methods over {len(next(iter(comparison['methods'].values()))['seeds'])} seeds"
    )
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return png.getvalue()
