"""Flax Llama vs transformers' PyTorch LlamaForCausalLM on tiny random configs (f32, max |diff| <= 1e-4),
with each kernel set (model/kernels.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_hf_llama, on_gpu, random_batch, torch_logits

from llm2llm_jax.model.llama import forward
from llm2llm_jax.model.weights import load_hf_checkpoint

LLAMA3_SCALING = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16,
}
CASES = {
    "mha-untied": dict(num_key_value_heads=4),
    "gqa-tied": dict(num_key_value_heads=2, tie_word_embeddings=True),
    "mqa-untied": dict(num_key_value_heads=1),
    "gqa-linear-rope": dict(num_key_value_heads=2, rope_scaling={"rope_type": "linear", "factor": 4.0}),
    "mqa-tied-llama3-rope": dict(
        num_key_value_heads=1, tie_word_embeddings=True, rope_scaling=LLAMA3_SCALING, rope_theta=500000.0
    ),
    "explicit-head-dim": dict(num_key_value_heads=2, head_dim=32),
}
# Every kernel set, and the xla set training through jax.nn.dot_product_attention (its XLA implementation;
# the cuDNN one runs the same code on a GPU, see benchmarks/accelerator_check.py) and through the blocked
# attention.
KERNELS = {
    "cpu": dict(kernels="cpu"),
    "xla": dict(kernels="xla"),
    "xla-fused": dict(kernels="xla", fused_attention="xla"),
    "xla-blocked": dict(kernels="xla", fused_attention="blocked"),
}


# Every case with each kernel set over the scanned stack; the unrolled stack and the fused attention on the
# cases that differ for them (tied heads, GQA and MQA, RoPE scaling, head_dim), so that every code path is
# compared with transformers without running the whole cross product.
LOGIT_CASES = (
    [(case, True, kernels) for case in CASES for kernels in ("cpu", "xla")]
    + [
        (case, False, kernels)
        for case in ("mha-untied", "mqa-tied-llama3-rope")
        for kernels in ("cpu", "xla")
    ]
    + [
        (case, True, kernels)
        for case in ("gqa-tied", "explicit-head-dim", "gqa-linear-rope")
        for kernels in ("xla-fused", "xla-blocked")
    ]
)


@pytest.mark.parametrize(
    "case,scan,kernels", LOGIT_CASES, ids=[f"{c}-{'scan' if s else 'loop'}-{k}" for c, s, k in LOGIT_CASES]
)
def test_logits_match_transformers(tmp_path, case, scan, kernels):
    path, ref_model = make_hf_llama(tmp_path, **CASES[case])
    cfg, params = load_hf_checkpoint(path, scan_layers=scan, **KERNELS[kernels])
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


@pytest.mark.slow
@pytest.mark.parametrize("kernels", ["cpu", "xla"])
@pytest.mark.parametrize("policy", ["full", "dots"])
def test_remat_keeps_logits_and_grads(tmp_path, policy, kernels):
    path, _ = make_hf_llama(tmp_path)
    cfg, params = load_hf_checkpoint(path, kernels=kernels)
    ids, mask = random_batch(cfg.vocab_size)

    def loss(p, c):
        return forward(c, p, jnp.asarray(ids), jnp.asarray(mask)).mean()

    base_loss, base_grad = jax.value_and_grad(loss)(params, cfg)
    remat_loss, remat_grad = jax.value_and_grad(loss)(params, cfg.replace(remat_policy=policy))
    assert abs(float(base_loss) - float(remat_loss)) < 1e-6
    for a, b in zip(jax.tree.leaves(base_grad), jax.tree.leaves(remat_grad)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


BF16_KERNELS = dict(
    KERNELS, **({"xla-cudnn": dict(kernels="xla", fused_attention="cudnn")} if on_gpu() else {})
)


@pytest.mark.slow
@pytest.mark.parametrize("kernels", list(BF16_KERNELS))
def test_bf16_compute_tracks_f32(tmp_path, kernels):
    path, ref_model = make_hf_llama(tmp_path)
    cfg16, params16 = load_hf_checkpoint(
        path, dtype="bfloat16", param_dtype="bfloat16", **BF16_KERNELS[kernels]
    )
    ids, mask = random_batch(cfg16.vocab_size)
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
                "layers", "embed", "q_heads"
            )


def target_batch(vocab_size):
    """One collated row-batch of three examples with 2-6 target tokens each (numpy arrays)."""
    from llm2llm_jax.student.batching import Example, collate
    from llm2llm_jax.student.recipe import TrainHParams

    rs = np.random.RandomState(0)
    examples = [
        Example(list(rs.randint(3, vocab_size, n)), list(rs.randint(3, vocab_size, k)))
        for n, k in [(9, 3), (5, 6), (12, 2)]
    ]
    return {k: v[0] for k, v in collate(examples, TrainHParams(batch_size=3, seq_multiple=8)).items()}


def mean_target_loss(cfg, b):
    """params -> mean next-token loss over the target tokens of batch `b`."""
    from llm2llm_jax.student.step import token_loss

    def mean_loss(p):
        total, count = token_loss(
            p,
            cfg,
            *(jnp.asarray(b[k]) for k in ("input_ids", "attention_mask", "target_positions", "target_mask")),
        )
        return total / count

    return mean_loss


def torch_target_loss_and_grads(ref_model, b):
    """transformers' loss over batch `b`'s target tokens and every parameter's gradient, by torch autograd."""
    import torch

    ids = torch.tensor(b["input_ids"], dtype=torch.long)
    labels = torch.full_like(ids, -100)  # transformers shifts: label at t is predicted at t - 1
    for row, (positions, mask) in enumerate(zip(b["target_positions"], b["target_mask"])):
        for p in positions[mask == 1]:
            labels[row, p + 1] = ids[row, p + 1]
    ref_model.zero_grad()
    ref_loss = ref_model(input_ids=ids, attention_mask=torch.tensor(b["attention_mask"]), labels=labels).loss
    ref_loss.backward()
    return ref_loss.item(), {n: p.grad.numpy() for n, p in ref_model.named_parameters()}


@pytest.mark.slow
@pytest.mark.parametrize("kernels", list(KERNELS))
@pytest.mark.parametrize("case", ["gqa-tied", "mha-untied"])
def test_loss_gradients_match_transformers(tmp_path, case, kernels):
    """Every gradient of the target-token loss (through each kernel set's matmul backward, the
    target-only LM head and the tied embedding) equals torch autograd on transformers' model."""
    from llm2llm_jax.model.weights import iter_hf_tensors

    path, ref_model = make_hf_llama(tmp_path, **CASES[case])
    cfg, params = load_hf_checkpoint(path, scan_layers=False, **KERNELS[kernels])
    b = target_batch(cfg.vocab_size)
    loss, grads = jax.value_and_grad(mean_target_loss(cfg, b))(params)
    ref_loss, ref_grads = torch_target_loss_and_grads(ref_model, b)
    assert abs(float(loss) - ref_loss) <= 1e-5
    for name, g in iter_hf_tensors(grads, cfg):
        scale = max(np.abs(ref_grads[name]).max(), 1e-6)
        np.testing.assert_allclose(g, ref_grads[name], atol=1e-5 * scale + 1e-7, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("kernels", ["cpu", "xla"])
def test_bf16_gradients_track_f32(tmp_path, monkeypatch, kernels):
    """bf16 compute: the gradients track the f32 ones to bf16 precision. With the cpu kernels the
    backward matmuls run on row-major bf16 operands (`kernels.row_major`); that layout must not change
    a single value."""
    from llm2llm_jax.model import kernels as kernels_lib

    path, _ = make_hf_llama(tmp_path, num_key_value_heads=2, tie_word_embeddings=True)
    cfg, params = load_hf_checkpoint(path, scan_layers=False, kernels=kernels)
    b = target_batch(cfg.vocab_size)

    def grads(c):
        return jax.tree.leaves(jax.jit(jax.grad(mean_target_loss(c, b)))(params))

    f32 = grads(cfg)
    bf16 = grads(cfg.replace(dtype="bfloat16"))
    if kernels == "cpu":
        monkeypatch.setattr(kernels_lib, "row_major", lambda a: a)
        bf16_any_layout = grads(cfg.replace(dtype="bfloat16"))  # traced again, without the layout constraints
        for g16, g16_any in zip(bf16, bf16_any_layout):
            np.testing.assert_allclose(
                np.asarray(g16),
                np.asarray(g16_any),
                rtol=0,
                atol=1e-6 * np.abs(np.asarray(g16, np.float64)).max(),
            )
    for g16, g32 in zip(bf16, f32):
        g16, g32 = np.asarray(g16, np.float64), np.asarray(g32, np.float64)
        assert np.abs(g16 - g32).max() <= 0.1 * np.abs(g32).max()
        cosine = (g16 * g32).sum() / (np.linalg.norm(g16) * np.linalg.norm(g32))
        assert cosine > 0.999, cosine


@pytest.mark.parametrize("tied", [False, True])
def test_bf16_embedding_gradient_is_summed_in_f32(tied):
    """Under bf16 compute with f32 weights, the embedding's backward (the scatter-add of every position's
    cotangent into its token's row) runs in f32: a token repeated across a batch would otherwise have
    its gradient summed in bf16."""
    import jax.extend

    from llm2llm_jax.model.config import tiny_config
    from llm2llm_jax.model.llama import init_params

    cfg = tiny_config(dtype="bfloat16", kernels="xla", tie_word_embeddings=tied)
    params = init_params(cfg, jax.random.PRNGKey(0))
    ids = jnp.zeros((2, 16), jnp.int32)

    def loss(p):
        return forward(cfg, p, ids).astype(jnp.float32).mean()

    jaxpr = jax.make_jaxpr(jax.grad(loss))(params)
    scatters = []

    def walk(jp):
        for eqn in jp.eqns:
            if eqn.primitive.name.startswith("scatter"):
                scatters.append(eqn.outvars[0].aval.dtype)
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(jaxpr.jaxpr)
    assert scatters and all(d == jnp.float32 for d in scatters), scatters


@pytest.mark.parametrize("remat", ["none", "full"])
def test_each_unrolled_layer_is_traced_once_and_computes_what_calling_it_computes(monkeypatch, remat):
    """Tracing a 4-layer unrolled model runs one layer's Python, not four; the program JAX pastes that
    trace into gives the loss and every gradient bit for bit as the layer function called in each layer."""
    from llm2llm_jax.model import llama
    from llm2llm_jax.model.config import tiny_config

    cfg = tiny_config(
        num_hidden_layers=4, vocab_size=97, dtype="bfloat16", scan_layers=False, remat_policy=remat
    )
    params = llama.init_params(cfg, jax.random.PRNGKey(0))
    ids, mask = random_batch(cfg.vocab_size, length=12)

    def loss(p):
        logits = llama.LlamaForCausalLM(cfg).apply({"params": p}, jnp.asarray(ids), jnp.asarray(mask))[0]
        return jnp.mean(logits * logits)

    calls = []
    dense = llama._dense
    monkeypatch.setattr(llama, "_dense", lambda *a, **k: calls.append(1) or dense(*a, **k))
    llama.traced_once_layer.cache_clear()
    once = jax.jit(jax.value_and_grad(loss))(params)
    assert len(calls) == 7  # q, k, v, o, gate, up, down: one layer's projections

    jitted = llama.traced_once_layer.__wrapped__
    monkeypatch.setattr(llama, "traced_once_layer", lambda *key: jitted(*key).__wrapped__)
    calls.clear()
    each = jax.jit(jax.value_and_grad(loss))(params)
    assert len(calls) == 4 * 7
    for a, b in zip(jax.tree.leaves(once), jax.tree.leaves(each), strict=True):
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
