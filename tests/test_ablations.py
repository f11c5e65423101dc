"""The paper's ablations as config switches, each doing what it says: train.init (fine-tune the base weights,
or continue the previous iteration's model), augment.parents (the wrong seed examples, or all of them) and
augment.from_augmented (may kept examples be parents)."""

import os
import sys

import jax
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import loop_harness
from oracle_run import ORACLE_RIGHT, OracleRun, _asked_ids, _oracle_config, _oracle_teacher, _scripted

from llm2llm_jax.common import files
from llm2llm_jax.run import controller as loop


def test_parents_all_asks_about_every_seed_example(tmp_path):
    config = _oracle_config(tmp_path, "run")
    config.iterations = 2
    config.augment.parents = "all"
    teacher = _oracle_teacher(tmp_path / "run")
    OracleRun(config, teacher).run()
    seed = files.read_jsonl(str(tmp_path / "run" / "data" / "seed.jsonl"))
    assert sorted(_asked_ids(teacher, seed)) == sorted(ex["id"] for ex in seed)  # right ones too (5 of 11)


def test_from_augmented_lets_kept_examples_be_parents(tmp_path):
    """The stand-in student gets every kept example wrong (none is in ORACLE_RIGHT): with from_augmented,
    iteration 1 asks about the 6 wrong seed examples and the 12 kept ones, and its seed accuracy still counts
    the seed set alone; without it, only the 6 wrong seed examples are asked about again."""
    rows = {}
    for flag in (False, True):
        name = f"run-{flag}"
        config = _oracle_config(tmp_path, name)
        config.augment.from_augmented = flag
        teacher = _oracle_teacher(tmp_path / name)
        run = OracleRun(config, teacher)
        rows[flag] = run.run()
        kept0 = files.read_jsonl(str(tmp_path / name / "iter_0000" / "augment.jsonl"))
        seen = [r.turns[-1]["content"].split("\n")[1].removeprefix("Input: ") for r in teacher.seen]
        wrong_seed = seen[:6]
        assert len(kept0) == 12 and all(q not in ORACLE_RIGHT for q in wrong_seed)
        second_round = seen[6:]
        if flag:
            assert sorted(second_round) == sorted(wrong_seed + [k["input"] for k in kept0])
            preds = files.read_jsonl(str(tmp_path / name / "iter_0001" / "predictions_seed.jsonl"))
            assert len(preds) == rows[flag][1]["train_size"] == 23  # the whole training set was evaluated
            assert any(p["id"].startswith("it0-") for p in preds)
        else:
            assert sorted(second_round) == sorted(wrong_seed)
    assert [r["seed_accuracy"] for r in rows[True]] == [r["seed_accuracy"] for r in rows[False]]
    assert rows[True][1]["train_size"] == rows[False][1]["train_size"]


def test_from_augmented_is_part_of_the_result_key():
    from configs.base import base_config
    from llm2llm_jax.run import results

    c = base_config()
    key = results.result_key(c, [{"input": "q", "output": "a"}], "w")
    c.augment.parents = "all"  # decides what is asked for, not what a fine-tune + evaluation computes
    assert results.result_key(c, [{"input": "q", "output": "a"}], "w") == key
    c.augment.from_augmented = True  # decides which examples are evaluated
    assert results.result_key(c, [{"input": "q", "output": "a"}], "w") != key


@pytest.mark.slow
def test_train_init_previous_continues_the_previous_iterations_model(tmp_path, monkeypatch):
    """Iteration 1 starts from iteration 0's trained weights (restored from its checkpoint, bit for bit), not
    from the base weights; the checkpoint a next iteration would need is the only one left."""
    from llm2llm_jax.student.train import Trainer

    model = loop_harness.tiny_student()
    base = [np.asarray(x).tobytes() for x in jax.tree.leaves(model[1])]
    starts, trained = [], []
    original_init, original_fit = Trainer.init_state, Trainer.fit

    def init_state(self, params):
        if self.total_steps > 1:  # the fine-tunes' trainers, not the one that restores a trained model
            starts.append([np.asarray(x).tobytes() for x in jax.tree.leaves(params)])
        return original_init(self, params)

    def fit(self, *args, **kwargs):
        out = original_fit(self, *args, **kwargs)
        trained.append([np.asarray(x).tobytes() for x in jax.tree.leaves(self.params())])
        return out

    monkeypatch.setattr(Trainer, "init_state", init_state)
    monkeypatch.setattr(Trainer, "fit", fit)
    config = loop_harness.small_config(str(tmp_path / "run"), iterations=2, epochs=1)
    config.train.init = "previous"
    rows = loop.run_from_config(config, model=model, teacher=_scripted(tmp_path / "run"))
    assert len(rows) == 2 and len(trained) == 2
    # iteration 0: the base weights; iteration 1: first the fresh template, then iteration 0's trained model
    assert starts[0] == base and starts[-1] == trained[0] != base
    assert not os.path.exists(tmp_path / "run" / "iter_0000" / "checkpoints")
    assert os.listdir(tmp_path / "run" / "iter_0001" / "checkpoints")
