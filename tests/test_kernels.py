"""The kernel sets (model/kernels.py): every set's attention, with and without the KV cache, equals plain
softmax attention in values and gradients, and the cpu kernels' matmuls keep their layouts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import on_gpu

from llm2llm_jax.common import parallel
from llm2llm_jax.model import attention, kernels
from llm2llm_jax.model.config import tiny_config
from llm2llm_jax.student.recipe import TrainHParams
from llm2llm_jax.student.train import Trainer


def test_trainer_resolves_auto_for_its_mesh():
    """The choice is made once, from the mesh's devices, when the trainer builds the model."""
    cfg = tiny_config()
    assert cfg.kernels == "auto"
    cpus = parallel.make_mesh((1, -1, 1), devices=jax.devices("cpu"))
    assert Trainer(cfg, TrainHParams(), cpus, total_steps=1).cfg.kernels == "cpu"
    assert Trainer(cfg.replace(kernels="xla"), TrainHParams(), cpus, total_steps=1).cfg.kernels == "xla"


def _reference_attention(q, k, v, mask):
    """Plain masked softmax attention in f32 with each kv head repeated for its query group:
    q [B, T, h, D], k, v [B, S, kvh, D] -> [B, T, kvh, g, D]."""
    b, t, h, d = q.shape
    kvh = k.shape[2]
    k, v = (jnp.repeat(x.astype(jnp.float32), h // kvh, axis=2) for x in (k, v))
    scores = jnp.einsum("bthd,bshd->bhts", q.astype(jnp.float32), k) / np.sqrt(d)
    probs = jax.nn.softmax(jnp.where(mask[:, None], scores, -1e30), axis=-1)
    return jnp.einsum("bhts,bshd->bthd", probs, v).reshape(b, t, kvh, h // kvh, d)


KERNEL_SETS = {
    "cpu": kernels.CpuKernels(),
    "xla": kernels.XlaKernels(),
    "xla-fused-xla": kernels.XlaKernels("xla"),
    "xla-blocked": kernels.XlaKernels("blocked"),
}
if on_gpu():
    KERNEL_SETS["xla-fused-cudnn"] = kernels.XlaKernels("cudnn")

# Left padding (rows start at 0, 3, 100) as prompts are padded; right padding (rows end at 160, 150, 61)
# as training batches are, where the mask carries each row's length; and right padding under a sliding
# window known when tracing (an int) and one known only when running (a traced scalar).
PADDINGS = ["left", "right", "right-window", "right-traced-window"]
WINDOW = 37


def attention_inputs(padding, b=3, t=160):
    """(AttentionMask, valid [B, T]) for one of `PADDINGS`."""
    if padding == "left":
        valid = jnp.arange(t)[None, :] >= jnp.array([0, 3, 100])[:, None]
    else:
        valid = jnp.arange(t)[None, :] < jnp.array([160, 150, 61])[:, None]
    dense = jnp.tril(jnp.ones((t, t), bool))[None] & valid[:, None, :]
    window = None
    if padding.endswith("window"):
        rows = jnp.arange(t)
        dense = dense & (rows[:, None] - rows[None, :] < WINDOW)[None]
        window = WINDOW if padding == "right-window" else jnp.int32(WINDOW)
    lengths = None if padding == "left" else valid.sum(axis=-1)
    return attention.AttentionMask(dense, valid, window, lengths), valid


@pytest.mark.slow
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", list(KERNEL_SETS))
def test_attention_equals_plain_attention(name, dtype, padding):
    """Every set's training attention (`attend`) and decoding attention (`attend_cached`, the whole
    sequence written into an empty cache of its layout) give plain softmax attention's values on every
    real query row, and `attend` its gradients, with padding longer than a causal block of the cpu and
    blocked attention and a last block shorter than the others."""
    if name.endswith("cudnn") and dtype == "float32":
        pytest.skip("cuDNN attention runs bf16 and fp16 only")
    ks = KERNEL_SETS[name]
    b, t, h, kvh, d = 3, 160, 6, 2, 8
    assert attention.causal_blocks(t) == [(0, 64), (64, 128), (128, 160)]
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    q, k, v = (jax.random.normal(key, (b, t, n, d)).astype(dtype) for key, n in zip(keys, (h, kvh, kvh)))
    mask, valid = attention_inputs(padding, b, t)
    # A loss reads real positions only, as training's does: padded query rows may average over
    # different key ranges on different paths, and nothing may depend on them.
    weights = jax.random.normal(keys[3], (b, t, kvh, h // kvh, d)) * valid[:, :, None, None, None]
    dt = jnp.dtype(dtype)

    def loss(attend):
        return lambda q, k, v: jnp.sum(attend(q, k, v).astype(jnp.float32) * weights)

    def jitted(f):
        """f(q, k, v, mask) jitted (run op by op, the blocks of small matmuls and their gradients dispatch
        hundreds of ops), the mask an argument unless its window is an int that must stay static."""
        if isinstance(mask.window, int):
            return jax.jit(lambda q, k, v: f(q, k, v, mask))(q, k, v)
        return jax.jit(f)(q, k, v, mask)

    def with_grads(attend):
        return lambda q, k, v, m: jax.value_and_grad(
            loss(lambda q, k, v: attend(q, k, v, m)), argnums=(0, 1, 2)
        )(q, k, v)

    ours, our_grads = jitted(with_grads(lambda q, k, v, m: ks.attend(q, k, v, m, dt)))
    ref, ref_grads = jitted(with_grads(lambda q, k, v, m: _reference_attention(q, k, v, m.dense)))
    cfg = tiny_config(
        num_attention_heads=h,
        num_key_value_heads=kvh,
        head_dim=d,
        hidden_size=h * d,
        num_hidden_layers=1,
        dtype=dtype,
        kernels=ks.name,
    )
    cache = ks.init_cache(cfg, b, t + 4)
    layer_cache = {"k": cache["k"][0], "v": cache["v"][0]}
    cache_mask = jnp.pad(mask.dense, ((0, 0), (0, 0), (0, 4)))  # the 4 unwritten slots are never attended
    out_cached, written = jax.jit(ks.attend_cached)(q, k, v, layer_cache, jnp.int32(0), cache_mask)
    assert out_cached.shape == (b, t, kvh, h // kvh, d)
    assert written["k"].shape == layer_cache["k"].shape and written["k"].dtype == ks.cache_dtype(cfg)
    tol = 1e-5 if dtype == "float32" else 2e-2  # bf16: scores and probabilities are rounded
    real = np.asarray(valid)
    out_ref = np.asarray(_reference_attention(q, k, v, mask.dense))
    out = jitted(lambda q, k, v, m: ks.attend(q, k, v, m, dt))
    assert out.shape == (b, t, kvh, h // kvh, d)
    np.testing.assert_allclose(np.asarray(out, np.float32)[real], out_ref[real], atol=tol)
    np.testing.assert_allclose(np.asarray(out_cached, np.float32)[real], out_ref[real], atol=tol)
    # the loss sums thousands of weighted outputs: rounding grows with the square root of their number
    assert abs(float(ours) - float(ref)) <= tol * (abs(float(ref)) + np.sqrt(np.asarray(valid).sum() * h * d))
    for g_ours, g_ref in zip(our_grads, ref_grads):
        g_ours, g_ref = np.asarray(g_ours, np.float32), np.asarray(g_ref, np.float32)
        np.testing.assert_allclose(g_ours, g_ref, atol=tol * np.abs(g_ref).max())


def _bf16_grid(key, shape, scale=1.0):
    """Random f32 values that bf16 holds exactly: products of two of them are exact in f32."""
    return (jax.random.normal(key, shape) * scale).astype(jnp.bfloat16).astype(jnp.float32)


def _products_and_grads(product, x, weight, cotangent):
    """product(x, weight), and the gradients of sum(product * cotangent) for x and for the weight."""

    def loss(x, weight):
        return jnp.sum(product(x, weight).astype(jnp.float32) * cotangent)

    return jax.jit(product)(x, weight), jax.jit(jax.grad(loss, argnums=(0, 1)))(x, weight)


@pytest.mark.parametrize(
    "rows", [24, kernels.HEAD_BY_TABLE_ROWS + 8], ids=["table-on-the-left", "table-transposed"]
)
@pytest.mark.parametrize("name", ["cpu", "xla"])
def test_tied_head_takes_the_table_as_stored(name, rows):
    """The tied head of a bf16 x and the f32 table as stored equals x @ table^T in f32, in values and in
    both gradients, on either side of the row count where the cpu set stops putting the table on the
    left. Every operand (the cotangent too) lies on the bf16 grid, so the products are exact and only
    the order of f32 sums differs: the cpu set returns f32 logits and the table's gradient in f32, the
    xla set bf16 logits and the table's gradient rounded through bf16 (the gradient of its cast)."""
    ks = KERNEL_SETS[name]
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    vocab, embed = 1000, 64
    x = _bf16_grid(keys[0], (2, rows // 2, embed)).astype(jnp.bfloat16)
    table = _bf16_grid(keys[1], (vocab, embed), 0.05)
    cotangent = _bf16_grid(keys[2], (2, rows // 2, vocab))
    logits, (dx, dtable) = _products_and_grads(ks.tied_head, x, table, cotangent)
    x32 = x.astype(jnp.float32)
    assert logits.shape == (2, rows // 2, vocab) and dtable.dtype == jnp.float32 and dx.dtype == jnp.bfloat16
    tol = 1e-5 if name == "cpu" else 1e-2  # the xla set returns bf16 logits and rounds the table's gradient
    np.testing.assert_allclose(
        np.asarray(logits, np.float32), np.einsum("bte,ve->btv", x32, table), rtol=tol, atol=tol
    )
    np.testing.assert_allclose(
        np.asarray(dx, np.float32), np.einsum("btv,ve->bte", cotangent, table), rtol=2**-7, atol=1e-3
    )  # dx is returned in x's dtype: within one bf16 step
    np.testing.assert_allclose(
        np.asarray(dtable), np.einsum("btv,bte->ve", cotangent, x32), rtol=tol, atol=tol
    )


def _compiled_gradients(product, x_shape, weight_shape) -> str:
    """The compiled program (text) of sum(product(x, weight))'s gradients for bf16 x and an f32 weight."""
    x, weight = jnp.zeros(x_shape, jnp.bfloat16), jnp.zeros(weight_shape, jnp.float32)

    def loss(x, weight):
        return jnp.sum(product(x, weight))

    return jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, weight).compile().as_text()


@pytest.mark.parametrize("rows, transposed", [(64, False), (1024, True)])
def test_cpu_tied_head_copies_the_table_transposed_only_for_many_rows(rows, transposed):
    """Up to HEAD_BY_TABLE_ROWS rows (a fine-tune's target positions), neither the head's forward nor its
    backward holds the table as an [embed, vocab] array (a transposed copy of the whole table each way,
    several times dearer than the product at these row counts); beyond them the transposed copy is cheaper
    than the transposed products, and the compiled step has one."""
    vocab, embed = 1000, 48  # shapes that no other array of the step shares
    program = _compiled_gradients(kernels.cpu_tied_head, (rows, embed), (vocab, embed))
    assert (f"[{embed},{vocab}]" in program) == transposed


@pytest.mark.parametrize("rows, transposed", [(16, False), (4096, True)])
def test_cpu_matmul_backward_copies_the_weight_transposed_only_for_many_rows(rows, transposed):
    """A fine-tune's few hundred rows: the backward computes da^T = weight @ ct^T with the weight as stored,
    and transposes only the [rows, ...] arrays; with many rows the weight's transposed copy is the smaller
    one, and the compiled backward holds it."""
    k, n = 136, 328  # shapes that no other array of the step shares
    program = _compiled_gradients(kernels.cpu_matmul, (rows, k), (k, n))
    assert (f"bf16[{n},{k}]" in program) == transposed


@pytest.mark.parametrize("lead", [(3, 40), (2, 4)], ids=["weight-transposed", "activations-transposed"])
@pytest.mark.parametrize("name", ["cpu", "xla"])
def test_matmul_takes_a_weight_as_stored(name, lead):
    """`matmul` of bf16 activations and an f32 weight multiplies in bf16; the cpu set returns the weight's
    gradient summed in f32 and not rounded through bf16 (the operands lie on the bf16 grid, so only the
    order of f32 sums differs from the f32 reference). 120 rows take the cpu backward's transposed weight,
    8 rows its transposed activations (`_transpose_the_activations`)."""
    ks = KERNEL_SETS[name]
    keys = jax.random.split(jax.random.PRNGKey(2), 3)
    x = _bf16_grid(keys[0], lead + (96,)).astype(jnp.bfloat16)
    weight = _bf16_grid(keys[1], (96, 80), 0.05)
    cotangent = _bf16_grid(keys[2], lead + (80,))
    y, (dx, dweight) = _products_and_grads(ks.matmul, x, weight, cotangent)
    x32 = x.astype(jnp.float32)
    assert dweight.dtype == jnp.float32 and dx.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(y, np.float32), x32 @ weight, rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(
        np.asarray(dx, np.float32), np.einsum("btn,kn->btk", cotangent, weight), rtol=1e-2, atol=1e-2
    )
    weight_tol = 1e-5 if name == "cpu" else 1e-2
    np.testing.assert_allclose(
        np.asarray(dweight),
        np.einsum("btk,btn->kn", x32, cotangent),
        rtol=weight_tol,
        atol=weight_tol,
    )


@pytest.mark.parametrize("name", ["cpu", "xla"])
def test_cache_layout_and_dtype(name):
    """cpu: keys [B, kvh, D, S] and values [B, kvh, S, D] in f32 under bf16 compute; xla: both
    [B, kvh, S, D] in the compute dtype. Scanned layers stack, unrolled layers keep one array each."""
    cfg = tiny_config(dtype="bfloat16", kernels=name)
    from llm2llm_jax.model.llama import init_cache

    stacked = init_cache(cfg, 2, 10)
    unrolled = init_cache(cfg.replace(scan_layers=False), 2, 10)
    kvh, d, layers = cfg.num_key_value_heads, cfg.head_dim, cfg.num_hidden_layers
    k_shape = (2, kvh, d, 10) if name == "cpu" else (2, kvh, 10, d)
    assert stacked["k"].shape == (layers,) + k_shape and stacked["v"].shape == (layers, 2, kvh, 10, d)
    assert len(unrolled["k"]) == layers and unrolled["k"][0].shape == k_shape
    assert stacked["k"].dtype == (jnp.float32 if name == "cpu" else jnp.bfloat16)
