"""The LLM2LLM controller on a tiny random student with a scripted teacher: what is sent, what is
trained from, resume after kill -9 at three points, budget stops and config clashes."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

import loop_harness  # noqa: E402
from llm2llm_jax import files  # noqa: E402


JIT_CACHE = os.path.join(ROOT, ".cache", "test-jit-cache")


def _harness(workdir, *args):
    env = dict(os.environ, LLM2LLM_TEST_JIT_CACHE=JIT_CACHE)
    proc = subprocess.run([sys.executable, os.path.join(HERE, "loop_harness.py"), str(workdir), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, env=env)
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith(("METRICS ", "TEACHER ")):
            key, _, payload = line.partition(" ")
            out[key] = json.loads(payload)
    return proc, out


def _comparable(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference")
    proc, out = _harness(workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, out


def test_loop_sends_only_wrong_seed_examples_and_trains_from_base(tmp_path, monkeypatch):
    from llm2llm_jax import loop
    from llm2llm_jax.teacher.backends import ScriptedBackend, TeacherSettings
    from llm2llm_jax.teacher.cache import DiskCache
    from llm2llm_jax.train import Trainer

    model = loop_harness.tiny_student()
    base_fingerprint = [np.asarray(x).tobytes() for x in jax.tree.leaves(model[1])]
    seen_params = []
    original_init = Trainer.init_state

    def init_state(self, params):
        seen_params.append([np.asarray(x).tobytes() for x in jax.tree.leaves(params)])
        return original_init(self, params)

    monkeypatch.setattr(Trainer, "init_state", init_state)
    config = loop_harness.small_config(str(tmp_path / "run"), iterations=3, epochs=16)  # enough to get some right
    teacher = ScriptedBackend(TeacherSettings(kind="scripted"), DiskCache(str(tmp_path / "run" / "teacher_cache")),
                              script=loop_harness.scripted_answer)
    rows = loop.run_from_config(config, model=model, teacher=teacher)

    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert len(seen_params) == 3 and all(p == base_fingerprint for p in seen_params)  # always the base weights
    seed = files.read_jsonl(str(tmp_path / "run" / "data" / "seed.jsonl"))
    by_input = {ex["input"]: ex["id"] for ex in seed}
    requests = iter(teacher.seen)
    for i in (0, 1):
        preds = files.read_jsonl(str(tmp_path / "run" / f"iter_{i:04d}" / "predictions_seed.jsonl"))
        wrong = {p["id"] for p in preds if not p["correct"]}
        asked = []
        for _ in range(len(wrong)):
            text = next(requests).turns[-1]["content"].split("\n")[1].removeprefix("Input: ")
            assert text in by_input, "a request was made from something that is not a seed example"
            asked.append(by_input[text])
        assert set(asked) == wrong and len(asked) == len(wrong)
        augmented = files.read_jsonl(str(tmp_path / "run" / f"iter_{i:04d}" / "augment.jsonl"))
        assert all(a["parent_id"] in wrong and a["origin"] == "teacher" and a["iteration"] == i + 1 for a in augmented)
    assert next(requests, None) is None  # the last iteration asks nothing
    assert 0 < rows[0]["seed_wrong"] < len(seed) or 0 < rows[1]["seed_wrong"] < len(seed)  # a real mix of right/wrong
    assert rows[1]["train_size"] == rows[0]["train_size"] + rows[0]["new_examples"]
    for name in ("metrics.jsonl", "report.md", "report.png", "config.json"):
        assert os.path.getsize(tmp_path / "run" / name) > 0
    assert "test accuracy" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.parametrize("stage", ["train", "teacher", "shards"])
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
        for name in ("predictions_seed.jsonl", "predictions_test.jsonl"):
            assert (workdir / f"iter_{i:04d}" / name).read_text() == (ref_dir / f"iter_{i:04d}" / name).read_text()


def test_budget_stops_cleanly_and_a_larger_budget_continues(tmp_path):
    from llm2llm_jax import loop
    from llm2llm_jax.teacher.backends import ScriptedBackend, TeacherSettings
    from llm2llm_jax.teacher.cache import DiskCache

    model = loop_harness.tiny_student()
    config = loop_harness.small_config(str(tmp_path / "run"), iterations=2)

    def teacher(max_calls):
        return ScriptedBackend(TeacherSettings(kind="scripted", max_calls=max_calls, concurrency=1),
                               DiskCache(str(tmp_path / "run" / "teacher_cache")), script=loop_harness.scripted_answer)

    with pytest.raises(loop.RunError, match="budget spent: 2 of 2 calls.*rerun the same command"):
        loop.run_from_config(config, model=model, teacher=teacher(2))
    assert os.path.exists(tmp_path / "run" / "iter_0000" / "predictions_seed.jsonl")
    second = teacher(0)
    rows = loop.run_from_config(config, model=model, teacher=second)
    assert len(rows) == 2
    assert len(second.seen) == rows[0]["teacher_requests"] - 2  # the two paid answers came from the cache


def test_workdir_with_another_config_is_refused(tmp_path):
    from llm2llm_jax import loop

    config = loop_harness.small_config(str(tmp_path / "run"))
    os.makedirs(tmp_path / "run")
    files.write_json(str(tmp_path / "run" / "config.json"), json.loads(json.dumps(config.to_dict(), default=str)))
    other = loop_harness.small_config(str(tmp_path / "run"))
    other.train.learning_rate = 0.5
    with pytest.raises(loop.RunError, match=r"another config.*train.learning_rate.*--config.workdir"):
        loop.Llm2llmRun(other)._check_config()
    more = loop_harness.small_config(str(tmp_path / "run"), iterations=7)
    loop.Llm2llmRun(more)._check_config()  # more iterations is a continuation, not a clash


def test_loop_with_lora_and_the_eda_baseline(tmp_path):
    """LoRA students and the EDA baseline go through the same controller (adapters fresh each iteration)."""
    from llm2llm_jax import loop

    cfg, params, tok = loop_harness.tiny_student()
    lora_model = (cfg.replace(lora_rank=4), params, tok)
    config = loop_harness.small_config(str(tmp_path / "lora"), iterations=2, epochs=2)
    rows = loop.run_from_config(config, model=lora_model, teacher=_scripted(tmp_path / "lora"))
    assert [r["iteration"] for r in rows] == [0, 1] and rows[1]["train_size"] >= rows[0]["train_size"]
    eda = loop_harness.small_config(str(tmp_path / "eda"), iterations=2, epochs=2, method="eda")
    rows = loop.run_from_config(eda, model=(cfg, params, tok))
    augmented = files.read_jsonl(str(tmp_path / "eda" / "iter_0000" / "augment.jsonl"))
    assert rows[0]["teacher_requests"] == 0 and all(a["origin"] == "eda" for a in augmented)


def test_pool_teacher_adds_real_rows_of_the_failed_class(tmp_path):
    """The diagnostic 'pool' teacher: unused training rows with each wrong seed example's label."""
    from llm2llm_jax import loop

    config = loop_harness.small_config(str(tmp_path / "pool"), iterations=2, epochs=2)
    config.teacher.kind = "pool"
    config.teacher.per_example = 2
    config.teacher.same_label = True
    rows = loop.run_from_config(config, model=loop_harness.tiny_student())
    augmented = files.read_jsonl(str(tmp_path / "pool" / "iter_0000" / "augment.jsonl"))
    seed = {ex["id"]: ex for ex in files.read_jsonl(str(tmp_path / "pool" / "data" / "seed.jsonl"))}
    test = files.read_jsonl(str(tmp_path / "pool" / "data" / "test.jsonl"))
    assert rows[0]["seed_wrong"] > 0 and len(augmented) == rows[0]["new_examples"] > 0
    assert all(a["origin"] == "pool" and a["output"] == seed[a["parent_id"]]["output"] for a in augmented)
    assert not {a["input"] for a in augmented} & ({ex["input"] for ex in seed.values()} | {ex["input"] for ex in test})


def _scripted(workdir):
    from llm2llm_jax.teacher.backends import ScriptedBackend, TeacherSettings
    from llm2llm_jax.teacher.cache import DiskCache

    return ScriptedBackend(TeacherSettings(kind="scripted"), DiskCache(str(workdir / "teacher_cache")),
                           script=loop_harness.scripted_answer)
