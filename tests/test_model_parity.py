"""Flax Llama vs transformers' PyTorch LlamaForCausalLM on tiny random configs (f32, max |diff| <= 1e-4)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import make_hf_llama, random_batch, torch_logits
from llm2llm_jax.model.llama import forward
from llm2llm_jax.model.weights import load_hf_checkpoint

LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 16}
CASES = {
    "mha-untied": dict(num_key_value_heads=4),
    "gqa-tied": dict(num_key_value_heads=2, tie_word_embeddings=True),
    "mqa-untied": dict(num_key_value_heads=1),
    "gqa-linear-rope": dict(num_key_value_heads=2, rope_scaling={"rope_type": "linear", "factor": 4.0}),
    "mqa-tied-llama3-rope": dict(num_key_value_heads=1, tie_word_embeddings=True, rope_scaling=LLAMA3_SCALING,
                                 rope_theta=500000.0),
    "explicit-head-dim": dict(num_key_value_heads=2, head_dim=32),
}


@pytest.mark.parametrize("scan", [True, False], ids=["scan", "loop"])
@pytest.mark.parametrize("case", list(CASES))
def test_logits_match_transformers(tmp_path, case, scan):
    path, ref_model = make_hf_llama(tmp_path, **CASES[case])
    cfg, params = load_hf_checkpoint(path, scan_layers=scan)
    ids, mask = random_batch(cfg.vocab_size, length=24)
    ref = torch_logits(ref_model, ids, mask)
    out = np.asarray(forward(cfg, params, jnp.asarray(ids), jnp.asarray(mask)))
    valid = mask.astype(bool)
    assert np.abs(ref[valid]).max() > 1.0  # logits are not trivially tiny
    diff = np.abs(out - ref)[valid].max()
    assert diff <= 1e-4, f"{case}: max |logit diff| {diff}"


def test_rope_scaling_is_not_a_no_op(tmp_path):
    """Guard for the parity test: scaled and unscaled RoPE must give different logits on the same weights."""
    path, _ = make_hf_llama(tmp_path, num_key_value_heads=1, rope_scaling=LLAMA3_SCALING)
    cfg, params = load_hf_checkpoint(path)
    ids, mask = random_batch(cfg.vocab_size, length=24)
    scaled = np.asarray(forward(cfg, params, jnp.asarray(ids), jnp.asarray(mask)))
    plain = np.asarray(forward(cfg.replace(rope_scaling=None), params, jnp.asarray(ids), jnp.asarray(mask)))
    assert np.abs(scaled - plain).max() > 1e-3


@pytest.mark.parametrize("policy", ["full", "dots"])
def test_remat_keeps_logits_and_grads(tmp_path, policy):
    path, _ = make_hf_llama(tmp_path)
    cfg, params = load_hf_checkpoint(path)
    ids, mask = random_batch(cfg.vocab_size)

    def loss(p, c):
        return forward(c, p, jnp.asarray(ids), jnp.asarray(mask)).mean()

    base_loss, base_grad = jax.value_and_grad(loss)(params, cfg)
    remat_loss, remat_grad = jax.value_and_grad(loss)(params, cfg.replace(remat_policy=policy))
    assert abs(float(base_loss) - float(remat_loss)) < 1e-6
    for a, b in zip(jax.tree.leaves(base_grad), jax.tree.leaves(remat_grad)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_bf16_compute_tracks_f32(tmp_path):
    path, ref_model = make_hf_llama(tmp_path)
    cfg, params = load_hf_checkpoint(path)
    cfg16, params16 = load_hf_checkpoint(path, dtype="bfloat16", param_dtype="bfloat16")
    ids, mask = random_batch(cfg.vocab_size)
    ref = torch_logits(ref_model, ids, mask)
    out16 = np.asarray(forward(cfg16, params16, jnp.asarray(ids), jnp.asarray(mask)))
    assert jax.tree.leaves(params16)[0].dtype == jnp.bfloat16
    valid = mask.astype(bool)
    rel = np.abs(out16 - ref)[valid].max() / np.abs(ref[valid]).max()
    assert rel < 0.05, rel


def test_params_carry_logical_axis_names():
    from flax import linen as nn

    from llm2llm_jax.model.config import tiny_config
    from llm2llm_jax.model.llama import abstract_params

    for scan in (True, False):
        boxed = abstract_params(tiny_config(scan_layers=scan))
        specs = nn.get_partition_spec(boxed)
        leaves = jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
        assert leaves and all(isinstance(s, jax.sharding.PartitionSpec) and len(s) >= 1 for s in leaves)
        if scan:
            assert specs["layers"]["self_attn"]["q_proj"]["kernel"] == jax.sharding.PartitionSpec(
                "layers", "embed", "q_heads")
