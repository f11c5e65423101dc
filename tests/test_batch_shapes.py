"""A fine-tune's fixed set of batch shapes (`batch_shapes`): the fewest padded tokens for a number of widths,
every batch fitting one, and training on them equal to training on batches padded each to its own."""

import itertools
import re

import jax
import numpy as np
import pytest

from llm2llm_jax.common import compilations, parallel
from llm2llm_jax.model.config import tiny_config
from llm2llm_jax.model.llama import init_params
from llm2llm_jax.student.batching import (
    Example,
    _fewest_widths,
    batch_shapes,
    collate,
    make_batches,
)
from llm2llm_jax.student.recipe import TrainHParams
from llm2llm_jax.student.train import Trainer, host_params


def _rows(lengths, targets=2, seed=0):
    rs = np.random.RandomState(seed)
    return [
        Example(list(rs.randint(3, 200, n - targets)), list(rs.randint(3, 200, targets))) for n in lengths
    ]


def _padded_tokens(counted, chosen):
    return sum(c * min(w for w in chosen if w >= width) for width, c in counted)


@pytest.mark.parametrize("seed", range(6))
def test_the_widths_chosen_pad_no_more_than_any_other_choice(seed):
    """Against every subset of the candidates that holds the widest: the dynamic programme's choice pads
    the fewest tokens, and uses no more widths than it may."""
    rs = np.random.RandomState(seed)
    widths = sorted(rs.choice(np.arange(8, 200, 8), size=rs.randint(1, 9), replace=False).tolist())
    counted = [(w, int(rs.randint(1, 50))) for w in widths]
    for most in (1, 2, 3, 5):
        chosen = _fewest_widths(counted, most)
        assert len(chosen) <= most and chosen[-1] == widths[-1] and chosen == sorted(set(chosen))
        best = min(
            _padded_tokens(counted, subset + (widths[-1],))
            for k in range(min(most, len(widths)))
            for subset in itertools.combinations(widths[:-1], k)
        )
        assert _padded_tokens(counted, chosen) == best, (counted, most, chosen)


def test_one_width_pads_every_batch_to_the_longest_row_and_none_keeps_todays_widths():
    rows = _rows([6, 9, 12, 14, 20, 30, 31, 33] * 4)
    hp = TrainHParams(batch_size=4, seq_multiple=8, max_length=64, row_widths=1)
    shapes = batch_shapes(rows, hp)
    assert shapes == ((40, 8),)
    epoch = list(make_batches(rows, hp, np.random.default_rng(0), shapes=shapes))
    assert {b["input_ids"].shape for b in epoch} == {(1, 4, 40)}
    assert {b["target_positions"].shape for b in epoch} == {(1, 4, 8)}
    assert batch_shapes(rows, TrainHParams(batch_size=4, seq_multiple=8, max_length=64, row_widths=0)) == ()
    free = {b["input_ids"].shape[-1] for b in make_batches(rows, hp, np.random.default_rng(0))}
    assert len(free) > 1


def test_every_batch_fits_a_shape_and_keeps_every_target():
    """Rows of many lengths and target counts (long answers among short prompts): each batch takes the
    narrowest shape that holds its rows, and no target position is lost to the shape's target count."""
    rs = np.random.RandomState(3)
    rows = [
        Example(list(rs.randint(3, 200, rs.randint(1, 40))), list(rs.randint(3, 200, rs.randint(1, 30))))
        for _ in range(300)
    ]
    hp = TrainHParams(batch_size=8, seq_multiple=8, max_length=48, row_widths=3)
    shapes = batch_shapes(rows, hp)
    assert 1 < len(shapes) <= 3 and shapes[-1][0] == 48
    seen = 0
    for batch in make_batches(rows, hp, np.random.default_rng(0), shapes=shapes):
        width, k = batch["input_ids"].shape[-1], batch["target_positions"].shape[-1]
        assert (width, k) in shapes
        seen += int(batch["target_mask"].sum())
    want = sum(
        min(len(r.prompt_ids) + len(r.target_ids), 48) - max(len(r.prompt_ids), 1)
        for r in rows
        if len(r.prompt_ids) < 48
    )
    assert seen == want


def test_a_short_row_with_a_long_answer_sets_the_target_count_of_a_wider_shape():
    """Short rows that are all answer and long rows that are all prompt share one width: its target
    positions hold the short rows' answers, not only the longest rows' few targets."""
    rows = [Example([5], list(range(3, 18)))] * 4 + [Example(list(range(3, 41)), [7, 2])] * 4
    hp = TrainHParams(batch_size=2, seq_multiple=8, max_length=64, row_widths=1)
    shapes = batch_shapes(rows, hp)
    assert shapes == ((40, 16),)
    kept = sum(
        int(b["target_mask"].sum()) for b in make_batches(rows, hp, np.random.default_rng(0), shapes=shapes)
    )
    assert kept == 4 * 15 + 4 * 2


def test_a_row_wider_than_every_shape_is_an_error():
    hp = TrainHParams(batch_size=2, seq_multiple=8, max_length=64)
    with pytest.raises(ValueError, match="wider than every batch shape"):
        collate(_rows([30, 20]), hp, shapes=((16, 8), (24, 8)))


@pytest.mark.slow
def test_training_on_fixed_shapes_equals_training_on_each_batchs_own_width(monkeypatch):
    """Padding is masked out of the loss: a fit whose batches all take one width ends with the parameters
    of a fit that padded each batch to its own longest row (to float rounding), and compiles one step. The
    run's compile log names the batch shape each step program was compiled for, ahead or at first use."""
    monkeypatch.setattr(compilations, "_ahead", {})  # as in a fresh process
    cfg = tiny_config()
    params = host_params(init_params(cfg, jax.random.PRNGKey(0)))
    rows = _rows([5, 7, 9, 12, 15, 18, 21, 23] * 2, targets=3, seed=4)
    mesh = parallel.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    results = {}
    for widths in (1, 0):  # fixed shapes first: the jit has compiled none of their widths before
        hp = TrainHParams(
            learning_rate=1e-3, batch_size=4, epochs=2, warmup_ratio=0.0, seq_multiple=8, row_widths=widths
        )
        trainer = Trainer(cfg, hp, mesh, total_steps=8)
        trainer.init_state(params)
        shapes = set()

        def step(batch, run=trainer.step, shapes=shapes):
            shapes.add(batch["input_ids"].shape)
            return run(batch)

        trainer.step = step
        jit_programs, mark = trainer._step_fn._cache_size(), compilations.compiled_mark()
        trainer.fit(rows, progress=False)
        compiled_by_jit = trainer._step_fn._cache_size() - jit_programs
        _, log = compilations.compiled_since(mark)
        logged = {
            re.fullmatch(r"jit\(train_step\) \[batch 4 x (\d+), \d+ targets, prefix 0\]", n) for n in log
        }
        widths_logged = {int(m.group(1)) for m in logged if m}
        results[widths] = (host_params(trainer.params()), shapes, compiled_by_jit, widths_logged)
    assert results[1][1] == {(1, 4, 24)} and len(results[0][1]) > 1
    # at first use, each width is logged as it compiles (width 24 may reuse the program compiled ahead)
    seen = {w for _, _, w in results[0][1]}
    assert results[1][3] == {24} and seen - {24} <= results[0][3] <= seen
    # fixed shapes are compiled ahead, in the background: the step's jit compiles none of them
    assert results[1][2] == 0 and results[0][2] > 0
    # f32 sums in another order at another width; Adam divides by the root of tiny second moments, so on an
    # AVX-512 CPU a weight moves by up to 3e-5 after 8 steps at lr 1e-3: a tenth of a step is the bound.
    for a, b in zip(jax.tree.leaves(results[1][0]), jax.tree.leaves(results[0][0])):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
