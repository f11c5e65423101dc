"""The comparison job: one run per (method, seed), iteration 0 computed once per seed and shared, the
baselines held to LLM2LLM's teacher budget, and a comparison whose numbers are the runs' own, paired by
seed."""

import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from oracle_run import OracleRun, _oracle_config, _oracle_teacher

from llm2llm_jax.common import files
from llm2llm_jax.common.errors import ConfigError
from llm2llm_jax.run import compare


def _experiment(tmp_path, methods="finetune,llm2llm,auggpt,eda", seeds="0,1"):
    config = _oracle_config(tmp_path, "experiment")
    config.compare.methods, config.compare.seeds = methods, seeds
    runs = []

    def run(c):
        r = OracleRun(c, _oracle_teacher(c.workdir))
        runs.append(r)
        return r.run()

    return config, runs, run


def test_every_method_and_seed_runs_once_and_iteration_0_is_shared(tmp_path):
    config, runs, run = _experiment(tmp_path)
    comparison = compare.run_experiment(config, run=run)
    experiment = tmp_path / "experiment"
    assert [(r.config.method, r.config.seed) for r in runs] == [
        (m, s) for s in (0, 1) for m in ("finetune", "llm2llm", "auggpt", "eda")
    ]
    for r in runs:
        assert r.workdir == str(experiment / r.config.method / f"seed{r.config.seed}")
    # plain fine-tuning on a seed's seed set happens once per seed: the other methods read it
    first_fits = [r for r in runs if r.trained_on and len(r.trained_on[0]) == 11]
    assert [(r.config.method, r.config.seed) for r in first_fits] == [("finetune", 0), ("finetune", 1)]
    rows = files.read_jsonl(str(experiment / "llm2llm" / "seed1" / "metrics.jsonl"))
    assert rows[0]["shared_from"] == f"{experiment / 'finetune' / 'seed1'} iteration 0"
    for name in ("comparison.json", "comparison.md", "comparison.png"):
        assert os.path.getsize(experiment / name) > 0
    saved = json.loads((experiment / "comparison.json").read_text())
    assert saved["methods"]["llm2llm"]["final_test_accuracy"] == {
        str(s): files.read_jsonl(str(experiment / "llm2llm" / f"seed{s}" / "metrics.jsonl"))[-1][
            "test_accuracy"
        ]
        for s in (0, 1)
    }
    assert "vs_finetune" in saved["methods"]["auggpt"] and "vs_finetune" not in saved["methods"]["finetune"]
    assert comparison["methods"]["eda"]["teacher_requests"] == 0
    # a second invocation reads every finished run and writes nothing new
    before = {p: os.path.getmtime(p) for p in experiment.rglob("*") if p.is_file()}
    compare.run_experiment(config, run=run)
    assert {p: os.path.getmtime(p) for p in experiment.rglob("*") if p.is_file()} == before


def test_an_experiment_with_a_dev_split_reports_each_runs_dev_selected_student(tmp_path):
    config, runs, run = _experiment(tmp_path, methods="finetune,llm2llm", seeds="0,1")
    extra = [
        {"input": q, "output": a}
        for q, a in [
            ("How many moons has Jupiter ?", "NUM"),
            ("Who discovered penicillin ?", "HUM"),
            ("Where is the Sahara desert ?", "LOC"),
            ("What does UNESCO stand for ?", "ABBR"),
            ("What is a sonnet ?", "DESC"),
            ("What instrument did Miles Davis play ?", "ENTY"),
            ("How tall is Mount Kilimanjaro ?", "NUM"),
            ("Who founded the Ming dynasty ?", "HUM"),
            ("Where do kangaroos live ?", "LOC"),
            ("What does RADAR stand for ?", "ABBR"),
            ("Why is the sky blue ?", "DESC"),
            ("What language is spoken in Brazil ?", "ENTY"),
        ]
    ]
    files.write_jsonl(config.data.train_path, files.read_jsonl(config.data.train_path) + extra)
    config.data.seed_count, config.data.seed_fraction, config.data.dev_count = 12, 0.0, 10
    comparison = compare.run_experiment(config, run=run)
    for seed in (0, 1):
        rows = files.read_jsonl(str(tmp_path / "experiment" / "llm2llm" / f"seed{seed}" / "metrics.jsonl"))
        picked = comparison["methods"]["llm2llm"]["dev_selected"]["iteration"][str(seed)]
        assert rows[picked]["dev_accuracy"] == max(r["dev_accuracy"] for r in rows)
    text = (tmp_path / "experiment" / "comparison.md").read_text()
    assert "## The student each run delivers: selected by dev accuracy" in text
    assert not (tmp_path / "experiment" / "llm2llm" / "seed0" / "student").exists()  # runs are evidence


def test_baselines_get_llm2llms_teacher_requests_per_iteration(tmp_path):
    config, runs, run = _experiment(tmp_path, methods="llm2llm,auggpt", seeds="0")
    compare.run_experiment(config, run=run)
    llm2llm, auggpt = (
        files.read_jsonl(str(tmp_path / "experiment" / m / "seed0" / "metrics.jsonl"))
        for m in ("llm2llm", "auggpt")
    )
    asked = [r.get("teacher_requests", 0) for r in llm2llm]
    assert asked[:2] == [6, 6]  # the stand-in student gets 6 of 11 seed examples wrong
    assert [r.get("teacher_requests", 0) for r in auggpt] == asked
    assert runs[1].config.augment.max_parents == "6,6"
    (tmp_path / "free").mkdir()
    unbudgeted = _experiment(tmp_path / "free", methods="auggpt", seeds="0")
    compare.run_experiment(unbudgeted[0], run=unbudgeted[2])
    free = files.read_jsonl(str(tmp_path / "free" / "experiment" / "auggpt" / "seed0" / "metrics.jsonl"))
    assert free[0]["teacher_requests"] == 11  # AugGPT alone: every seed example
    # two requests per parent: the baselines get as many parents as LLM2LLM had, not as many as its requests
    (tmp_path / "split").mkdir()
    split = _experiment(tmp_path / "split", methods="llm2llm,auggpt", seeds="0")
    split[0].teacher.requests_per_example = 2
    compare.run_experiment(split[0], run=split[2])
    rows = files.read_jsonl(str(tmp_path / "split" / "experiment" / "llm2llm" / "seed0" / "metrics.jsonl"))
    assert [r.get("teacher_requests") for r in rows[:2]] == [12, 12] and [r["parents"] for r in rows[:2]] == [
        6,
        6,
    ]
    assert split[1][1].config.augment.max_parents == "6,6"


def test_summary_statistics_are_paired_by_seed():
    def rows(*accs):
        return [{"test_accuracy": a, "teacher_requests": 2, "new_examples": 1} for a in accs]

    found = {
        "finetune": {0: rows(0.60), 1: rows(0.70), 2: rows(0.65)},
        "llm2llm": {0: rows(0.60, 0.66), 1: rows(0.70, 0.72), 2: rows(0.65, 0.69, 0.70)},
    }
    spend = {m: {s: {"input_tokens": 10, "output_tokens": 5} for s in range(3)} for m in found}
    out = compare.summarize(found, spend)
    ll = out["methods"]["llm2llm"]
    assert out["iterations"] == 3
    assert ll["summary"]["mean"] == pytest.approx((0.66 + 0.72 + 0.70) / 3)
    assert ll["vs_finetune"]["differences"] == pytest.approx([0.06, 0.02, 0.05])
    assert ll["vs_finetune"]["diff_mean"] == pytest.approx(13 / 300)
    # a run that stopped early keeps its last accuracy; plain fine-tuning is flat
    assert [c["mean"] for c in ll["curve"]] == pytest.approx(
        [0.65, (0.66 + 0.72 + 0.69) / 3, (0.66 + 0.72 + 0.70) / 3]
    )
    assert [c["mean"] for c in out["methods"]["finetune"]["curve"]] == pytest.approx([0.65] * 3)
    assert ll["teacher_requests"] == pytest.approx(14 / 3) and ll["teacher_tokens"] == 15
    table = "\n".join(compare.table(out))
    assert "| llm2llm | 3 | 69.3 [" in table and "| +4.3 [" in table
    one = compare.summarize(
        {"finetune": {0: rows(0.6)}, "llm2llm": {0: rows(0.7)}}, {m: {0: {}} for m in found}
    )
    assert one["methods"]["llm2llm"]["summary"]["low"] is None and "n/a" in "\n".join(compare.table(one))


def test_dev_selected_students_are_paired_with_the_last_iteration_and_fine_tuning():
    def rows(*pairs):  # (test, dev) accuracy per iteration
        return [
            {"iteration": i, "test_accuracy": t, "dev_accuracy": d, "dev_count": 200}
            for i, (t, d) in enumerate(pairs)
        ]

    found = {
        "finetune": {0: rows((0.60, 0.5)), 1: rows((0.70, 0.6)), 2: rows((0.65, 0.6))},
        "llm2llm": {
            0: rows((0.60, 0.5), (0.66, 0.7), (0.62, 0.6)),  # selects 1
            1: rows((0.70, 0.6), (0.72, 0.6), (0.75, 0.7)),  # selects 2
            2: rows((0.65, 0.6), (0.69, 0.6), (0.71, 0.5)),  # a tie between 0 and 1: selects 0
        },
    }
    out = compare.summarize(found, {m: {s: {} for s in range(3)} for m in found})
    d = out["methods"]["llm2llm"]["dev_selected"]
    assert d["iteration"] == {"0": 1, "1": 2, "2": 0}
    assert d["test_accuracy"] == {"0": 0.66, "1": 0.75, "2": 0.65}
    assert d["vs_last"]["differences"] == pytest.approx([0.04, 0.0, -0.06])
    assert d["vs_finetune"]["differences"] == pytest.approx([0.06, 0.05, 0.0])
    assert "vs_finetune" not in out["methods"]["finetune"]["dev_selected"]
    table = "\n".join(compare.dev_table(out))
    assert "| llm2llm | 68.7 [" in table and "| 1, 2, 0 | -0.7 [" in table
    # Without a dev split there is nothing to select by, and no table.
    for by_seed in found.values():
        for r in by_seed.values():
            for row in r:
                del row["dev_accuracy"]
    plain = compare.summarize(found, {m: {s: {} for s in range(3)} for m in found})
    assert "dev_selected" not in plain["methods"]["llm2llm"] and compare.dev_table(plain) == []


def test_a_bad_method_or_seed_list_is_one_line_before_any_run(tmp_path):
    config, runs, run = _experiment(tmp_path, methods="finetune,llm2lm")
    with pytest.raises(ConfigError, match=r"config.compare.methods: 'llm2lm' is not a method"):
        compare.run_experiment(config, run=run)
    config.compare.methods, config.compare.seeds = "finetune", "0,0"
    with pytest.raises(ConfigError, match=r"config.compare.seeds='0,0': a value is repeated"):
        compare.run_experiment(config, run=run)
    assert not runs and not os.path.exists(tmp_path / "experiment")
