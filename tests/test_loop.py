"""The LLM2LLM controller on a tiny random student with a scripted teacher: what is sent, what is
trained from, resume after kill -9 at three points, budget stops and config clashes."""

import json
import os
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

import loop_harness
from conftest import TEST_JIT_CACHE
from oracle_run import (
    ORACLE_RIGHT,
    OracleRun,
    _asked_ids,
    _oracle_config,
    _oracle_teacher,
    _scripted,
    oracle_teacher_answer,
)

from llm2llm_jax.common import files
from llm2llm_jax.config import snapshot
from llm2llm_jax.run import controller as loop


def _harness(workdir, *args):
    env = dict(os.environ, LLM2LLM_TEST_JIT_CACHE=TEST_JIT_CACHE)
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "loop_harness.py"), str(workdir), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith(("METRICS ", "TEACHER ")):
            key, _, payload = line.partition(" ")
            out[key] = json.loads(payload)
    return proc, out


def _comparable(rows):
    """Metrics without what depends on how much work this process did (time, and the FLOPs it computed)."""
    return [{k: v for k, v in r.items() if not k.endswith(("seconds", "flops"))} for r in rows]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference")
    proc, out = _harness(workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, out


@pytest.mark.slow
def test_loop_trains_every_iteration_from_the_base_weights(tmp_path, monkeypatch):
    """The real controller and a real (tiny) student: every iteration's Trainer starts from the same base
    weights, the teacher is asked about the student's wrong seed examples, and the run leaves its report.
    (Which examples are sent, and what is kept, is pinned down with a stand-in student below.)"""
    from llm2llm_jax.student.train import Trainer

    model = loop_harness.tiny_student()
    base_fingerprint = [np.asarray(x).tobytes() for x in jax.tree.leaves(model[1])]
    seen_params = []
    original_init = Trainer.init_state

    def init_state(self, params):
        seen_params.append([np.asarray(x).tobytes() for x in jax.tree.leaves(params)])
        return original_init(self, params)

    monkeypatch.setattr(Trainer, "init_state", init_state)
    config = loop_harness.small_config(str(tmp_path / "run"), iterations=2, epochs=2)
    teacher = _scripted(tmp_path / "run")
    told = []  # (requests sent before, requests told of): a local teacher compiles for them ahead
    monkeypatch.setattr(teacher, "expect", lambda requests: told.append((len(teacher.seen), list(requests))))
    rows = loop.run_from_config(config, model=model, teacher=teacher)

    assert [r["iteration"] for r in rows] == [0, 1]
    assert len(seen_params) == 2 and all(
        p == base_fingerprint for p in seen_params
    )  # always the base weights
    seed = files.read_jsonl(str(tmp_path / "run" / "data" / "seed.jsonl"))
    preds = files.read_jsonl(str(tmp_path / "run" / "iter_0000" / "predictions_seed.jsonl"))
    wrong = {p["id"] for p in preds if not p["correct"]}
    asked = _asked_ids(teacher, seed)
    assert sorted(asked) == sorted(wrong) and rows[0]["seed_wrong"] == len(wrong) > 0
    # told once, before the first request, of one request per seed example: those the teacher got among them
    assert len(told) == 1 and told[0][0] == 0 and len(told[0][1]) == len(seed)
    assert {r.turns[0]["content"] for r in teacher.seen} <= {r.turns[0]["content"] for r in told[0][1]}
    assert rows[1]["train_size"] == rows[0]["train_size"] + rows[0]["new_examples"] > rows[0]["train_size"]
    # the device's speed, measured after each iteration as the run went, for the FLOP-bound times of a later
    # summary
    assert all(r["device_flops"]["matmul_per_s"] > 0 for r in rows)
    for name in ("metrics.jsonl", "report.md", "report.png", "config.json"):
        assert os.path.getsize(tmp_path / "run" / name) > 0
    assert "test accuracy" in (tmp_path / "run" / "report.md").read_text()
    from test_run_report import tensorboard_scalars  # each fine-tune's loss per step, for TensorBoard

    for i in (0, 1):
        losses = tensorboard_scalars(str(tmp_path / "run" / "tensorboard" / f"iter_{i:04d}"))[
            "fine-tune/loss"
        ]
        train = files.read_json(str(tmp_path / "run" / f"iter_{i:04d}" / "train.json"))
        assert sorted(losses) == list(range(1, train["steps"] + 1))
        assert losses[train["steps"]] == pytest.approx(train["final_loss"], rel=1e-6)


@pytest.mark.parametrize("stage", ["train", "eval", "teacher", "keep", "shards", "export"])
@pytest.mark.slow  # runs the harness in subprocesses
def test_kill_9_then_resume_equals_uninterrupted(tmp_path, reference_run, stage):
    ref_dir, ref = reference_run
    workdir = tmp_path / "run"
    killed, _ = _harness(workdir, "--kill-at", stage)
    assert killed.returncode == -9, killed.stderr[-2000:]
    cache_dir = workdir / "teacher_cache"
    paid_before = sum(len(f) for _, _, f in os.walk(cache_dir)) if cache_dir.exists() else 0
    resumed, out = _harness(workdir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _comparable(out["METRICS"]) == _comparable(ref["METRICS"])
    # the resumed run paid only for what the killed one had not: total calls equal the reference's
    assert paid_before + len(out["TEACHER"]) == len(ref["TEACHER"])
    for i in range(3):
        names = ("predictions_seed.jsonl", "predictions_test.jsonl", "train.json") + (
            ("augment.jsonl", "augment_stats.json") if i < 2 else ()
        )
        for name in names:
            assert (workdir / f"iter_{i:04d}" / name).read_text() == (
                ref_dir / f"iter_{i:04d}" / name
            ).read_text()
    assert (workdir / "metrics.jsonl").read_text().count('train_final_loss": null') == 0
    # the same student exported, file for file, and nothing left of the killed export
    exported = sorted(
        p.relative_to(ref_dir / "student") for p in (ref_dir / "student").rglob("*") if p.is_file()
    )
    assert exported and exported == sorted(
        p.relative_to(workdir / "student") for p in (workdir / "student").rglob("*") if p.is_file()
    )
    for rel in exported:
        assert (workdir / "student" / rel).read_bytes() == (ref_dir / "student" / rel).read_bytes(), rel
    assert not [name for name in os.listdir(workdir) if name.startswith(".tmp-")]


@pytest.mark.parametrize("stage", ["train", "teacher"])
@pytest.mark.slow  # runs the harness in subprocesses
def test_sigterm_stops_in_one_line_releases_the_lock_and_resume_equals_uninterrupted(
    tmp_path, reference_run, stage
):
    """A real SIGTERM (what a preempted VM gets) in the middle of iteration 1's fine-tune or its teacher
    calls: the run unwinds, says how to continue in one line, exits 143 and leaves no lock; the rerun
    completes with the uninterrupted run's results. The fine-tune stops after the step it is on with a
    checkpoint of it (step 6, past the mid-training checkpoint at step 4), and the rerun resumes there."""
    ref_dir, ref = reference_run
    workdir = tmp_path / "run"
    stopped, _ = _harness(workdir, "--kill-at", stage, "--signal", "term")
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    assert stopped.stderr.strip().splitlines()[-1] == (
        "stopped by SIGTERM (a preempted machine or a scheduler); what finished is saved and the run "
        "directory's lock is released: rerun the same command to continue"
    )
    assert "Traceback" not in stopped.stderr and not (workdir / "run.lock").exists()
    resumed, out = _harness(workdir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    if stage == "train":
        assert "iteration 1: resuming training at step 6/" in resumed.stderr
    assert _comparable(out["METRICS"]) == _comparable(ref["METRICS"])
    for i in range(3):
        assert (workdir / f"iter_{i:04d}" / "predictions_test.jsonl").read_text() == (
            ref_dir / f"iter_{i:04d}" / "predictions_test.jsonl"
        ).read_text()


@pytest.mark.slow  # three harness processes
def test_kill_9_while_epochs_are_chosen_by_dev_loss_then_resume_equals_uninterrupted(tmp_path):
    """Killed in iteration 1's fine-tune after its 6th step, with the checkpoint of step 4 holding the best
    epoch's weights so far: the resumed run keeps the same epochs and computes the same results."""
    ref_dir = tmp_path / "reference"
    reference, ref = _harness(ref_dir, "--dev-loss")
    assert reference.returncode == 0, reference.stderr[-3000:]
    trains = [files.read_json(str(ref_dir / f"iter_{i:04d}" / "train.json")) for i in range(3)]
    assert all(len(t["dev_losses"]) == t["epochs_run"] and 1 <= t["kept_epoch"] <= 4 for t in trains)
    assert [r["kept_epoch"] for r in ref["METRICS"]] == [t["kept_epoch"] for t in trains]
    workdir = tmp_path / "run"
    killed, _ = _harness(workdir, "--dev-loss", "--kill-at", "train")
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed, out = _harness(workdir, "--dev-loss")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "iteration 1: resuming training at step 4/" in resumed.stderr
    assert _comparable(out["METRICS"]) == _comparable(ref["METRICS"])
    for i in range(3):
        for name in ("train.json", "predictions_test.jsonl", "predictions_dev.jsonl"):
            assert (workdir / f"iter_{i:04d}" / name).read_text() == (
                ref_dir / f"iter_{i:04d}" / name
            ).read_text()


@pytest.mark.slow  # two harness processes
def test_a_second_run_on_the_same_workdir_refuses_while_the_first_goes_on(tmp_path, reference_run):
    _, ref = reference_run
    workdir = tmp_path / "run"
    env = dict(os.environ, LLM2LLM_TEST_JIT_CACHE=TEST_JIT_CACHE)
    first = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "loop_harness.py"), str(workdir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    while not (workdir / "run.lock").exists() and first.poll() is None:
        time.sleep(0.05)
    second, _ = _harness(workdir)
    assert first.poll() is None  # refused while the first was still working, not after waiting for it
    assert second.returncode == 2 and second.stderr.strip().splitlines()[-1].startswith(
        f"error: {workdir} is in use by another run (pid {first.pid} on "
    )
    out, err = first.communicate(timeout=900)
    assert first.returncode == 0, err[-3000:]
    rows = json.loads(
        next(line for line in out.splitlines() if line.startswith("METRICS ")).partition(" ")[2]
    )
    assert _comparable(rows) == _comparable(ref["METRICS"])


def test_workdir_with_another_config_is_refused(tmp_path):
    config = loop_harness.small_config(str(tmp_path / "run"))
    os.makedirs(tmp_path / "run")
    files.write_json(
        str(tmp_path / "run" / "config.json"), json.loads(json.dumps(config.to_dict(), default=str))
    )
    other = loop_harness.small_config(str(tmp_path / "run"))
    other.train.learning_rate = 0.5
    refusal = r"another config \(train.learning_rate: 0.5 here, [0-9.e-]+ in the run\).*--config.workdir"
    with pytest.raises(loop.RunError, match=refusal):
        snapshot.check_snapshot(other, str(tmp_path / "run"))
    more = loop_harness.small_config(str(tmp_path / "run"), iterations=7)
    assert snapshot.check_snapshot(more, str(tmp_path / "run"))  # more iterations continue (and are recorded)


@pytest.mark.slow
def test_loop_with_a_lora_student(tmp_path):
    """A LoRA student trains (adapters only) and is evaluated with its adapters through the same
    controller."""
    cfg, params, tok = loop_harness.tiny_student()
    lora_model = (cfg.replace(lora_rank=4), params, tok)
    config = loop_harness.small_config(str(tmp_path / "lora"), iterations=1, epochs=1)
    rows = loop.run_from_config(config, model=lora_model, teacher=_scripted(tmp_path / "lora"))
    assert [r["iteration"] for r in rows] == [0] and rows[0]["train_final_loss"] > 0
    preds = files.read_jsonl(str(tmp_path / "lora" / "iter_0000" / "predictions_seed.jsonl"))
    assert len(preds) == 12 and all("generation" in p for p in preds)


def test_controller_sends_wrong_seed_examples_and_keeps_gold_labelled_new_ones(tmp_path, capsys):
    """A student right on 5 of 11 seed examples: each iteration asks the teacher about exactly the 6 wrong
    ones (with their gold class and the student's answer, a fresh sample seed per iteration), keeps new
    examples of the gold class only, drops copies of seed examples and of what earlier iterations kept,
    and trains iteration i+1 on everything iteration i trained on plus what it kept."""
    config = _oracle_config(tmp_path, "run")
    teacher = _oracle_teacher(tmp_path / "run")
    run = OracleRun(config, teacher)
    rows = run.run()

    seed = files.read_jsonl(str(tmp_path / "run" / "data" / "seed.jsonl"))
    assert len(seed) == 11 and "Who wrote Hamlet ?" not in {ex["input"] for ex in seed}  # the test duplicate
    assert "seed set: 11 examples (1 set aside as duplicates of test examples or of each other)" in (
        capsys.readouterr().err
    )
    assert files.read_json(str(tmp_path / "run" / "data" / "stats.json"))["seed_set_aside"] == 1
    by_id = {ex["id"]: ex for ex in seed}
    wrong = {ex["id"] for ex in seed if ex["input"] not in ORACLE_RIGHT}
    assert len(wrong) == 6
    asked = _asked_ids(teacher, seed)
    assert (
        len(asked) == 12 and set(asked[:6]) == set(asked[6:]) == wrong
    )  # two iterations ask; the last does not
    seeds_by_example = {}
    for example_id, request in zip(asked, teacher.seen):
        seeds_by_example.setdefault(example_id, set()).add(request.seed)
    assert all(
        len(s) == 2 for s in seeds_by_example.values()
    )  # a new sample each iteration, not the cached one

    assert [r["seed_wrong"] for r in rows] == [6, 6, 6]
    assert [r["new_examples"] for r in rows] == [12, 6, 0]
    assert rows[0]["drops"]["duplicate"] == 6 and rows[1]["drops"]["duplicate"] == 12
    assert rows[0]["drops"]["label_mismatch"] == rows[1]["drops"]["label_mismatch"] == 6
    seed_inputs = {ex["input"] for ex in seed}
    for i in (0, 1):
        kept = files.read_jsonl(str(tmp_path / "run" / f"iter_{i:04d}" / "augment.jsonl"))
        assert all(k["parent_id"] in wrong and k["output"] == by_id[k["parent_id"]]["output"] for k in kept)
        assert not {k["input"] for k in kept} & seed_inputs
    assert [r["train_size"] for r in rows] == [11, 23, 29]
    assert [len(t) for t in run.trained_on] == [11, 23, 29]
    for before, after in zip(run.trained_on, run.trained_on[1:]):
        assert set(before) < set(after)


def test_label_conditioned_rounds_ask_for_inputs_of_the_gold_class_and_count_the_yield(tmp_path, capsys):
    """teacher.mode=label_conditioned, 4 new examples asked in 2 requests per wrong seed example: every
    request names the example's gold class (never the student's answer), every kept example carries that
    class, and the iteration's metrics and log line give requests, examples asked, parsed, kept and the
    yield."""
    import re

    def script(request):
        question = re.search(r"^Question: (.*)$", request.turns[-1]["content"], re.M).group(1)
        return f"1. {question} (variant {request.seed % 997})\n2. {question}"  # one new, one a copy

    config = _oracle_config(tmp_path, "run")
    config.teacher.mode, config.teacher.per_example, config.teacher.requests_per_example = (
        "label_conditioned",
        4,
        2,
    )
    config.teacher.same_label = False
    teacher = _oracle_teacher(tmp_path / "run", script=script)
    rows = OracleRun(config, teacher).run()
    seed = {ex["id"]: ex for ex in files.read_jsonl(str(tmp_path / "run" / "data" / "seed.jsonl"))}
    from llm2llm_jax.data.tasks import TASKS

    for request in teacher.seen:
        last = request.turns[-1]["content"]
        parent = next(ex for ex in seed.values() if f"Question: {ex['input']}\n" in last)
        assert f"Class: {TASKS['trec'].verbalize(parent['output'])}" in last and "Student" not in last
    assert rows[0]["teacher_requests"] == 12 and rows[0]["asked"] == 24 and rows[0]["candidates"] == 24
    assert (
        rows[0]["new_examples"] == 12
        and rows[0]["drops"]["duplicate"] == 12
        and rows[0]["teacher_yield"] == 0.5
    )
    kept = files.read_jsonl(str(tmp_path / "run" / "iter_0000" / "augment.jsonl"))
    assert all(k["output"] == seed[k["parent_id"]]["output"] for k in kept)
    assert (
        "kept 12 of 24 asked (50% yield; 12 requests, 24 parsed) (dropped: duplicate 12)"
        in capsys.readouterr().err
    )


def test_controller_resumed_after_an_interruption_keeps_what_an_uninterrupted_run_keeps(tmp_path):
    """Interrupted during iteration 1's teacher calls, the same command again: the same kept examples and
    metrics as a run that never stopped (the filter remembers iteration 0's examples), and no answer
    bought twice."""

    class Preempted(RuntimeError):
        pass

    whole = OracleRun(_oracle_config(tmp_path, "whole"), _oracle_teacher(tmp_path / "whole"))
    expected = _comparable(whole.run())

    calls = []

    def dies_at_call_8(request):
        calls.append(request.seed)
        if len(calls) == 8:
            raise Preempted("preempted")
        return oracle_teacher_answer(request)

    config = _oracle_config(tmp_path, "resumed")
    with pytest.raises(Preempted):
        OracleRun(config, _oracle_teacher(tmp_path / "resumed", dies_at_call_8)).run()
    assert os.path.exists(tmp_path / "resumed" / "iter_0001" / "predictions_seed.jsonl")
    assert not os.path.exists(tmp_path / "resumed" / "iter_0001" / "augment.jsonl")
    second = _oracle_teacher(tmp_path / "resumed")
    rows = OracleRun(config, second).run()
    assert _comparable(rows) == expected
    # Every answer was bought once: what the first run got before and around the failure came from the cache.
    assert (len(calls) - 1) + len(second.seen) == 12 and len(second.seen) < 6
    for i in (0, 1):
        name = f"iter_{i:04d}/augment.jsonl"
        assert (tmp_path / "resumed" / name).read_text() == (tmp_path / "whole" / name).read_text()


def test_budget_stops_cleanly_and_a_larger_budget_continues(tmp_path):
    config = _oracle_config(tmp_path, "run")

    def teacher(max_calls):
        return _oracle_teacher(tmp_path / "run", max_calls=max_calls)

    with pytest.raises(loop.RunError, match="budget spent: 2 of 2 calls.*rerun the same command"):
        OracleRun(config, teacher(2)).run()
    assert os.path.exists(tmp_path / "run" / "iter_0000" / "predictions_seed.jsonl")
    second = teacher(0)
    rows = OracleRun(config, second).run()
    assert len(rows) == 3 and rows[0]["teacher_requests"] == 6
    assert len(second.seen) == 2 * 6 - 2  # the two paid answers came from the cache


def test_eda_baseline_edits_the_seed_examples_without_a_teacher(tmp_path):
    config = _oracle_config(tmp_path, "eda")
    config.method = "eda"
    config.iterations = 2
    config.teacher.per_example = 1
    rows = OracleRun(config, None).run()
    augmented = files.read_jsonl(str(tmp_path / "eda" / "iter_0000" / "augment.jsonl"))
    seed = {ex["id"]: ex for ex in files.read_jsonl(str(tmp_path / "eda" / "data" / "seed.jsonl"))}
    assert rows[0]["teacher_requests"] == 0 and augmented and all(a["origin"] == "eda" for a in augmented)
    assert {a["parent_id"] for a in augmented} <= set(seed)  # every seed example, right or wrong, is edited
    assert all(a["output"] == seed[a["parent_id"]]["output"] for a in augmented)


def test_pool_method_adds_real_rows_of_the_failed_class(tmp_path):
    """The diagnostic 'pool' method: unused training rows with each wrong seed example's label."""
    config = loop_harness.small_config(str(tmp_path / "pool"), iterations=2)
    config.method = "pool"
    config.teacher.per_example = 2
    config.teacher.same_label = True
    rows = OracleRun(config, None).run()
    augmented = files.read_jsonl(str(tmp_path / "pool" / "iter_0000" / "augment.jsonl"))
    seed = {ex["id"]: ex for ex in files.read_jsonl(str(tmp_path / "pool" / "data" / "seed.jsonl"))}
    test = files.read_jsonl(str(tmp_path / "pool" / "data" / "test.jsonl"))
    assert rows[0]["seed_wrong"] == 12 and len(augmented) == rows[0]["new_examples"] >= 20
    assert all(a["origin"] == "pool" and a["output"] == seed[a["parent_id"]]["output"] for a in augmented)
    assert not {a["input"] for a in augmented} & (
        {ex["input"] for ex in seed.values()} | {ex["input"] for ex in test}
    )


def test_a_round_that_keeps_nothing_reuses_the_result_and_the_run_stops(tmp_path, capsys):
    """A teacher with nothing usable to say: iteration 1 would train on exactly iteration 0's data, so it
    reuses iteration 0's fine-tune and evaluation instead (no training), asks the teacher again about the
    still-wrong examples with new sampling seeds, and after teacher.max_empty_rounds=2 empty rounds the run
    stops and says why. Rerunning the finished command changes nothing."""
    config = _oracle_config(tmp_path, "run")
    config.iterations = 5
    teacher = _oracle_teacher(tmp_path / "run", script=lambda request: "Sorry, I cannot write more examples.")
    run = OracleRun(config, teacher)
    rows = run.run()

    assert len(run.trained_on) == 1  # only iteration 0 fine-tuned
    assert len(rows) == 2 and rows[1]["reused_from"] == 0 and "reused_from" not in rows[0]
    for key in ("train_size", "seed_accuracy", "test_accuracy", "seed_wrong", "train_final_loss"):
        assert rows[1][key] == rows[0][key]
    for name in ("predictions_seed.jsonl", "predictions_test.jsonl"):
        assert (tmp_path / "run" / "iter_0001" / name).read_text() == (
            tmp_path / "run" / "iter_0000" / name
        ).read_text()
    assert [r["new_examples"] for r in rows] == [0, 0] and "stopped" not in rows[0]
    assert rows[1]["stopped"] == "no new example kept in 2 rounds in a row"
    seed = files.read_jsonl(str(tmp_path / "run" / "data" / "seed.jsonl"))
    asked = _asked_ids(teacher, seed)
    assert len(asked) == 12 and set(asked[:6]) == set(asked[6:])  # the same wrong examples, asked twice
    assert len({r.seed for r in teacher.seen}) == 12  # ... with a fresh sampling seed each round
    err = capsys.readouterr().err
    assert "iteration 1: same training data and settings as iteration 0; reusing its fine-tuned result" in err
    assert "stopping: no new example kept in 2 rounds in a row (teacher.max_empty_rounds)" in err
    assert "teacher.per_example" in err
    report = (tmp_path / "run" / "report.md").read_text()
    assert "reused iteration 0's result; stopped: no new example kept in 2 rounds in a row" in report

    again = OracleRun(config, _oracle_teacher(tmp_path / "run"))
    assert _comparable(again.run()) == _comparable(rows) and again.trained_on == []


@pytest.mark.slow
def test_a_finished_run_extended_with_more_iterations_equals_a_longer_run(tmp_path):
    """--config.iterations=3 on a finished 2-iteration run continues it: the old last iteration now augments
    (its fine-tune and evaluation are read back, not redone) and the run equals one that asked for 3 from
    the start, metrics, predictions and kept examples alike."""
    model = loop_harness.tiny_student()

    def run(name, iterations):
        config = loop_harness.small_config(str(tmp_path / name), iterations=iterations, epochs=1)
        return loop.run_from_config(config, model=model, teacher=_scripted(tmp_path / name))

    whole = run("whole", 3)
    short = run("grown", 2)
    assert len(short) == 2 and short[1]["note"] == "last iteration: no augmentation"

    # asked for fewer than it holds, the finished run is refused in one line and left as it was
    def state():
        return {
            p: os.path.getmtime(p) for p in map(str, (tmp_path / "grown").rglob("*")) if os.path.isfile(p)
        }

    before = state()
    with pytest.raises(loop.RunError) as err:
        run("grown", 1)
    assert str(err.value) == (
        f"{tmp_path / 'grown'} holds 2 finished iterations, more than config.iterations=1 asks for: rerun "
        f"with --config.iterations=2 to see the run (or more to continue it), or set config.workdir to a "
        f"new directory"
    )
    assert state() == before
    grown = run("grown", 3)
    assert _comparable(grown) == _comparable(whole) and len(grown) == 3
    for i in range(3):
        for name in ("predictions_seed.jsonl", "predictions_test.jsonl", "augment.jsonl"):
            if i < 2 or name != "augment.jsonl":
                assert (tmp_path / "grown" / f"iter_{i:04d}" / name).read_text() == (
                    tmp_path / "whole" / f"iter_{i:04d}" / name
                ).read_text(), (i, name)
