"""FLOP counts: hand-worked values for SmolLM2's shapes, the identities between them, XLA's own count of a
compiled forward pass, and the predictor's batching by length (answers in input order, its FLOPs counted)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm2llm_jax.model.config import LlamaConfig, tiny_config
from llm2llm_jax.student import flops

SMOLLM2 = LlamaConfig(
    vocab_size=49152,
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    tie_word_embeddings=True,
)


def test_smollm2_matmul_params_by_hand():
    # per layer: q and o 576 x 576, k and v 576 x 192, gate, up and down 576 x 1536
    per_layer = 2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536
    assert per_layer == 3_538_944
    assert flops.matmul_params(SMOLLM2) == (30 * per_layer, 576 * 49152)


def test_forward_train_and_decode_counts_agree():
    cfg = SMOLLM2
    layer, head = flops.matmul_params(cfg)
    attention = 30 * 2 * 2 * 9 * 64  # per token per position attended
    # 8 rows of 48 tokens, logits at 2 positions per row, after 16 cached positions
    assert flops.forward_flops(cfg, 8, 48, 2, context_before=16) == pytest.approx(
        8 * 48 * (2 * layer + attention * (16 + 24)) + 8 * 2 * 2 * head
    )
    # a training step is three forward passes over the same batch; frozen weights skip their gradient
    assert flops.train_step_flops(cfg, 8, 48, 4) == pytest.approx(3 * flops.forward_flops(cfg, 8, 48, 4))
    lora = cfg.replace(lora_rank=8)
    assert flops.train_step_flops(lora, 8, 48, 4) == pytest.approx(
        3 * flops.forward_flops(cfg, 8, 48, 4) - 2 * 8 * (48 * layer + 4 * head)
    )
    # decoding: the prefill, then one token per step over a cache that grows by one
    assert flops.decode_flops(cfg, 4, 32, 0) == flops.forward_flops(cfg, 4, 32, 1)
    assert flops.decode_flops(cfg, 4, 32, 3) == pytest.approx(
        flops.forward_flops(cfg, 4, 32, 1) + sum(flops.forward_flops(cfg, 4, 1, 1, 32 + s) for s in range(3))
    )


def test_forward_count_is_close_to_xlas_own():
    """XLA's cost analysis of the compiled forward pass counts every op; the matmuls are nearly all of it."""
    from llm2llm_jax.model.llama import forward, init_params

    cfg = tiny_config(
        hidden_size=256,
        intermediate_size=1024,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=1024,
        scan_layers=False,
        kernels="xla",
    )
    params = init_params(cfg, jax.random.PRNGKey(0))
    ids, mask = jnp.ones((4, 64), jnp.int32), jnp.ones((4, 64), jnp.int32)
    compiled = jax.jit(lambda p, i, m: forward(cfg, p, i, m)).lower(params, ids, mask).compile()
    analysis = compiled.cost_analysis()
    xla = (analysis[0] if isinstance(analysis, list) else analysis)["flops"]
    ours = flops.forward_flops(cfg, 4, 64, 64)  # logits at every position
    assert 0.85 * xla <= ours <= 1.02 * xla, (ours, xla)


@pytest.mark.slow
def test_predictor_batches_by_length_and_answers_in_order(monkeypatch):
    from loop_harness import tiny_student

    from llm2llm_jax.student import predict
    from llm2llm_jax.student.decode import decode_batch
    from llm2llm_jax.student.predict import Predictor

    monkeypatch.setattr(predict, "_COMPILED_WIDTHS", {})  # no widths from other tests
    cfg, params, tok = tiny_student()
    prompts = [list(range(10, 10 + n)) for n in (30, 5, 18, 6, 31, 17)]
    predictor = Predictor(cfg, params, tok, batch_size=2, pad_multiple=16)
    assert predictor.batches(prompts) == [[1, 3], [5, 2], [0, 4]]  # shortest first, ties in input order
    got = predictor.generate(prompts, max_new_tokens=3)
    for prompt, answer in zip(prompts, got):
        assert answer == decode_batch(cfg, params, tok, [prompt], 2, max_new_tokens=3, pad_multiple=16)[0]
    # one width for the call: its longest prompt, rounded up to 32
    fed_back = [min(max(got[i][1] for i in chunk), 2) for chunk in predictor.batches(prompts)]
    want = sum(flops.decode_flops(cfg, 2, 32, s) for s in fed_back)
    assert predictor.flops == pytest.approx(want)
    assert np.isfinite(predictor.flops) and predictor.flops > 0
    # a later call with shorter prompts (16 tokens once rounded) reuses that width, twice what it needs,
    # with the same answer
    predictor.flops = 0.0
    assert predictor.generate(prompts[1:2], max_new_tokens=3) == [got[1]]
    assert predictor.flops == pytest.approx(flops.decode_flops(cfg, 2, 32, min(got[1][1], 2)))


def test_a_call_reuses_a_compiled_width_that_is_at_most_twice_what_it_needs(monkeypatch):
    from llm2llm_jax.student import predict

    monkeypatch.setattr(predict, "_COMPILED_WIDTHS", {})
    assert predict.compiled_width("a", 48) == 48
    assert predict.compiled_width("a", 32) == 48  # fits, 1.5x
    assert predict.compiled_width("a", 16) == 16  # 48 would be 3x: a width of its own
    assert predict.compiled_width("a", 24) == 48  # exactly twice still fits
    assert predict.compiled_width("a", 64) == 64  # nothing compiled holds it
    assert predict.compiled_width("b", 32) == 32  # another model or decoding options: its own widths
    assert predict.compiled_width("a", 40) == 48  # the narrowest that fits


def test_common_prefix_length_rounds_down_and_leaves_a_token():
    from llm2llm_jax.student.predict import common_prefix_length

    assert common_prefix_length([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 9]], 1) == 4
    assert common_prefix_length([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 9]], 3) == 3
    assert common_prefix_length([[1, 2, 3], [1, 2, 3]], 1) == 2  # each keeps its last token
    assert common_prefix_length([[7, 2], [1, 2]], 1) == 0


@pytest.mark.slow
def test_predictor_reads_a_shared_prefix_once_with_the_same_answers():
    from loop_harness import tiny_student

    from llm2llm_jax.student.predict import Predictor

    cfg, params, tok = tiny_student()
    prompts = [list(range(10, 10 + n)) + [99] * (n % 3) for n in (30, 25, 18, 26)]
    keys = [jax.random.PRNGKey(i) for i in range(4)]
    whole = Predictor(cfg, params, tok, batch_size=4, pad_multiple=16)
    shared = Predictor(cfg, params, tok, batch_size=4, pad_multiple=16)
    want = whole.generate(prompts, max_new_tokens=4, temperature=1.0, rngs=keys)
    assert shared.generate(prompts, max_new_tokens=4, temperature=1.0, rngs=keys, prefix_multiple=8) == want
    # 16 shared tokens read once; rests of 2 to 16 tokens padded to 16
    fed_back = min(max(n for _, n in want), 3)
    assert shared.flops == pytest.approx(flops.decode_flops(cfg, 4, 16, fed_back, prefix=16))
    assert shared.flops < whole.flops
