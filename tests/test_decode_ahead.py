"""Decoding programs compiled ahead: the evaluation's program, compiled from the shapes of weights a fine-tune
has not trained yet, is the program the evaluation then runs, and answers as one compiled at first use."""

import re

import jax
import pytest
from loop_harness import tiny_student

from llm2llm_jax.common import compilations, parallel
from llm2llm_jax.data.tasks import TASKS
from llm2llm_jax.student import predict, prompting
from llm2llm_jax.student.predict import Predictor, compile_evaluation_ahead
from llm2llm_jax.student.train import trained_shapes

QUESTIONS = [
    "Who wrote Hamlet ?",
    "What is the capital of Peru ?",
    "How far is the Moon from the Earth in miles ?",
    "Why is the sky blue ?",
    "When did the Berlin Wall fall ?",
]


@pytest.mark.parametrize("mesh_shape, devices", [((1, -1, 1), 1), ((1, 4, 2), 8)])
def test_evaluation_runs_the_program_compiled_ahead(monkeypatch, mesh_shape, devices):
    monkeypatch.setattr(compilations, "_ahead", {})
    cfg, params, tok = tiny_student()
    mesh = parallel.make_mesh(mesh_shape, devices=jax.devices()[:devices])
    shapes = trained_shapes(cfg, mesh)
    # the trained weights as a fine-tune on this mesh returns them
    trained = jax.tree.map(lambda x, s: jax.device_put(x, s.sharding), params, shapes)
    task = TASKS["trec"]
    sets = [
        [{"id": str(i), "input": q, "output": "HUM"} for i, q in enumerate(QUESTIONS)],
        [{"id": str(i), "input": q, "output": "LOC"} for i, q in enumerate(QUESTIONS[1:3])],
    ]

    def evaluate_all():
        monkeypatch.setattr(predict, "_COMPILED_WIDTHS", {})  # as in a fresh process
        predictor = Predictor(cfg, trained, tok, batch_size=2, mesh=mesh)
        return [predictor.evaluate(task, examples, max_length=64, max_new_tokens=3) for examples in sets]

    jax.clear_caches()  # compiled here, whatever this process ran before
    mark = compilations.compiled_mark()
    at_first_use = evaluate_all()
    _, log = compilations.compiled_since(mark)  # the run's compile log says what it was compiled for
    purpose = r"jit\(generate_after_prefix\) \[batch 2 x \d+, prefix \d+, 3 new tokens, greedy\]"
    assert [name for name in log if re.fullmatch(purpose, name)], log
    monkeypatch.setattr(predict, "_COMPILED_WIDTHS", {})
    prompts = [prompting.encode_all(task, examples, tok, "plain", limit=64)[0] for examples in sets]
    compile_evaluation_ahead(cfg, shapes, tok, 2, prompts, 3, mesh=mesh)
    assert len(compilations._ahead) == 1  # both sets fit one width after the task's shared instruction
    used = []
    monkeypatch.setattr(compilations, "waited", lambda future: used.append(future) or future.result())
    assert evaluate_all() == at_first_use
    assert len(used) == 3 + 1  # every batch: three of the first set, one of the second


def test_weights_of_other_shardings_compile_their_own_program(monkeypatch):
    """Compiled ahead for weights sharded one way, a call with weights on another mesh runs its own program
    (compiled at first use), not the one compiled ahead."""
    monkeypatch.setattr(compilations, "_ahead", {})
    monkeypatch.setattr(predict, "_COMPILED_WIDTHS", {})
    cfg, params, tok = tiny_student()
    sharded = parallel.make_mesh((1, 4, 2), devices=jax.devices()[:8])
    compile_evaluation_ahead(cfg, trained_shapes(cfg, sharded), tok, 2, [[[5, 6, 7, 8]]], 3, mesh=sharded)
    one = parallel.make_mesh((1, -1, 1), devices=jax.devices()[:1])
    placed = jax.tree.map(lambda x, s: jax.device_put(x, s.sharding), params, trained_shapes(cfg, one))
    used = []
    monkeypatch.setattr(compilations, "waited", lambda future: used.append(future) or future.result())
    monkeypatch.setattr(predict, "_COMPILED_WIDTHS", {})
    predictor = Predictor(cfg, placed, tok, batch_size=2, mesh=one)
    answer = predictor.generate([[5, 6, 7, 8]], 3, prefix_multiple=16)
    assert used == [] and len(answer) == 1
