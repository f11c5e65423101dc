"""KV-cache decoding with each kernel set: cached == uncached logits; greedy == transformers' greedy
generate on SmolLM2, and the two kernel sets pick the same tokens."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import REAL_PROMPTS

from llm2llm_jax.model.config import tiny_config
from llm2llm_jax.model.llama import LlamaForCausalLM, forward, init_cache, init_params
from llm2llm_jax.student.decode import choose_token, generate, inference_weights, left_pad

KERNELS = ["cpu", "xla"]


@pytest.mark.slow
@pytest.mark.parametrize("kernels", KERNELS)
def test_cached_logits_equal_uncached(kernels):
    cfg = tiny_config(kernels=kernels)
    params = init_params(cfg, jax.random.PRNGKey(0))
    ids, mask = left_pad([[5, 6, 7, 8, 9, 10, 11], [12, 13, 14], [15, 16, 17, 18, 19]], pad_id=0, multiple=1)
    full = np.asarray(forward(cfg, params, jnp.asarray(ids), jnp.asarray(mask)))
    model = LlamaForCausalLM(cfg)
    cache = init_cache(cfg, ids.shape[0], ids.shape[1] + 2)
    # prefill the first 4 columns, then feed the rest one token at a time
    logits, cache = model.apply(
        {"params": params}, jnp.asarray(ids[:, :4]), jnp.asarray(mask[:, :4]), cache=cache
    )
    pieces = [np.asarray(logits)]
    for col in range(4, ids.shape[1]):
        logits, cache = model.apply(
            {"params": params},
            jnp.asarray(ids[:, col : col + 1]),
            jnp.asarray(mask[:, col : col + 1]),
            cache=cache,
        )
        pieces.append(np.asarray(logits))
    stepped = np.concatenate(pieces, axis=1)
    valid = mask.astype(bool)
    assert np.abs(stepped - full)[valid].max() < 1e-5


# Each pair of (tied or not, scanned or not, kernel set) values appears in one of the four variants.
DECODE_VARIANTS = [(True, True, "cpu"), (False, True, "xla"), (True, False, "xla"), (False, False, "cpu")]


@pytest.mark.parametrize(
    "tied,scan,kernels",
    DECODE_VARIANTS,
    ids=[f"{'tied' if t else 'untied'}-{'scan' if s else 'unrolled'}-{k}" for t, s, k in DECODE_VARIANTS],
)
@pytest.mark.slow
def test_generate_equals_greedy_by_full_forward(scan, tied, kernels):
    """The decode loop (stacked or per-layer cache, untied head built for the loop, last-position prefill)
    picks the same tokens as re-running the whole sequence each step."""
    cfg = tiny_config(scan_layers=scan, tie_word_embeddings=tied, kernels=kernels)
    params = init_params(cfg, jax.random.PRNGKey(2))
    ids, mask = left_pad([[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]], pad_id=0, multiple=1)
    tokens, _ = generate(
        cfg, params, jnp.asarray(ids), jnp.asarray(mask), jax.random.PRNGKey(0), max_new_tokens=6
    )
    seq, m = ids, mask
    for step in range(6):
        nxt = np.argmax(np.asarray(forward(cfg, params, jnp.asarray(seq), jnp.asarray(m)))[:, -1], axis=-1)
        assert list(np.asarray(tokens)[:, step]) == list(nxt), f"step {step}"
        seq, m = np.concatenate([seq, nxt[:, None]], 1), np.concatenate([m, np.ones_like(m[:, :1])], 1)


@pytest.mark.parametrize(
    "tied,scan,kernels",
    DECODE_VARIANTS[:2],
    ids=[f"{'tied' if t else 'untied'}-{'scan' if s else 'unrolled'}-{k}" for t, s, k in DECODE_VARIANTS[:2]],
)
@pytest.mark.slow
def test_a_shared_prefix_read_once_decodes_as_the_whole_prompts(tied, scan, kernels):
    """generate_after_prefix (the common prefix prefilled once, its cache copied to every row, each row's
    left-padded rest after it) samples the same tokens with the same lengths as generate on whole prompts,
    and its logits agree with a full forward pass."""
    from llm2llm_jax.student.decode import generate_after_prefix, prefill_after_prefix

    cfg = tiny_config(scan_layers=scan, tie_word_embeddings=tied, kernels=kernels)
    params = init_params(cfg, jax.random.PRNGKey(4))
    prefix = [30, 31, 32, 33, 34, 35]
    rests = [[5, 6, 7, 8, 9], [10], [12, 13, 14]]
    whole_ids, whole_mask = left_pad([prefix + r for r in rests], pad_id=0, multiple=1)
    rest_ids, rest_mask = left_pad(rests, pad_id=0, multiple=8)  # padding between the prefix and a rest
    keys = jnp.stack([jax.random.PRNGKey(i) for i in (3, 4, 5)])
    for temperature in (0.0, 1.2):
        options = dict(max_new_tokens=6, temperature=temperature, top_p=0.9 if temperature else 1.0)
        want = generate(cfg, params, jnp.asarray(whole_ids), jnp.asarray(whole_mask), keys, **options)
        got = generate_after_prefix(
            cfg, params, jnp.asarray(prefix), jnp.asarray(rest_ids), jnp.asarray(rest_mask), keys, **options
        )
        np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want[0]))
        np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(want[1]))
    # the next-token logits after each whole prompt, as a full forward pass computes them
    logits, _ = prefill_after_prefix(
        cfg, params, jnp.asarray(prefix), jnp.asarray(rest_ids), jnp.asarray(rest_mask), 0
    )
    full = np.asarray(forward(cfg, params, jnp.asarray(whole_ids), jnp.asarray(whole_mask)))[:, -1]
    np.testing.assert_allclose(np.asarray(logits), full, rtol=0, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_weights_prepared_once_decode_identically(dtype):
    """Callers that decode many batches prepare the weights once (`inference_weights`, outside jit):
    the same tokens as raw weights, and preparing prepared weights changes nothing (generate's own
    call inside its jit is then free)."""
    cfg = tiny_config(tie_word_embeddings=True).replace(dtype=dtype)
    params = init_params(cfg, jax.random.PRNGKey(3))
    dec_cfg, dec_params = inference_weights(cfg, params)
    assert not dec_cfg.tie_word_embeddings and dec_params["lm_head"]["kernel"].dtype == jnp.dtype(dtype)
    again_cfg, again = inference_weights(dec_cfg, dec_params)
    assert again_cfg == dec_cfg
    assert all(a is b for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(dec_params)))
    ids, mask = left_pad([[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]], pad_id=0, multiple=1)
    args = (jnp.asarray(ids), jnp.asarray(mask), jax.random.PRNGKey(0))
    raw, _ = generate(cfg, params, *args, max_new_tokens=5)
    prepared, _ = generate(dec_cfg, dec_params, *args, max_new_tokens=5)
    np.testing.assert_array_equal(np.asarray(raw), np.asarray(prepared))


@pytest.mark.slow
@pytest.mark.parametrize("kernels", KERNELS)
def test_sampling_equals_sampling_by_full_forward(kernels):
    """Top-p sampling with one key per row: the decode loop (KV cache, last token picked after the loop)
    draws the same tokens as re-running the whole sequence each step with the same key splits."""
    cfg = tiny_config(kernels=kernels)
    params = init_params(cfg, jax.random.PRNGKey(5))
    ids, mask = left_pad([[5, 6, 7, 8], [9, 10], [11, 12, 13]], pad_id=0, multiple=1)
    keys = jnp.stack([jax.random.PRNGKey(i) for i in (7, 8, 9)])
    new, temperature, top_p = 5, 1.3, 0.9
    tokens, _ = generate(
        cfg,
        params,
        jnp.asarray(ids),
        jnp.asarray(mask),
        keys,
        max_new_tokens=new,
        temperature=temperature,
        top_p=top_p,
    )
    seq, m = ids, mask
    for step in range(new):
        pair = jax.vmap(jax.random.split)(keys)
        keys, sub = pair[:, 0], pair[:, 1]
        logits = forward(cfg, params, jnp.asarray(seq), jnp.asarray(m))[:, -1]
        nxt = np.asarray(choose_token(logits, sub, temperature, top_p))
        assert list(np.asarray(tokens)[:, step]) == list(nxt), f"step {step}"
        seq, m = np.concatenate([seq, nxt[:, None]], 1), np.concatenate([m, np.ones_like(m[:, :1])], 1)
    assert len(set(map(tuple, np.asarray(tokens)))) > 1  # rows drew different samples


# The cpu kernels here; the xla kernels pick the same 32 tokens as the cpu kernels in f32
# (test_kernel_sets_pick_the_same_tokens_on_smollm2), so they match generate too.
@pytest.mark.parametrize("kernels", ["cpu"])
def test_greedy_matches_transformers_generate(smollm2, smollm2_torch, kernels):
    cfg, params, tok, _ = smollm2
    cfg = cfg.replace(kernels=kernels)
    encoded = [tok(p)["input_ids"] for p in REAL_PROMPTS]
    assert len({len(e) for e in encoded}) > 3  # different lengths, so left padding matters
    ids, mask = left_pad(encoded, tok.pad_token_id, multiple=1)
    new = 24
    tokens, lengths = generate(
        cfg,
        params,
        jnp.asarray(ids),
        jnp.asarray(mask),
        jax.random.PRNGKey(0),
        max_new_tokens=new,
        eos_ids=cfg.eos_token_ids,
        pad_id=tok.pad_token_id,
    )
    with torch.no_grad():
        ref = smollm2_torch.generate(
            torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask),
            max_new_tokens=new,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=cfg.eos_token_ids[0],
        )[:, ids.shape[1] :].numpy()
    tokens, lengths = np.asarray(tokens), np.asarray(lengths)
    for row in range(len(REAL_PROMPTS)):
        n = lengths[row]
        assert list(tokens[row, :n]) == list(ref[row, :n]), f"row {row} differs"


@pytest.mark.slow
def test_sampling_is_reproducible():
    cfg = tiny_config()
    params = init_params(cfg, jax.random.PRNGKey(1))
    ids, mask = left_pad([[5, 6, 7], [8, 9]], pad_id=0, multiple=1)
    args = (cfg, params, jnp.asarray(ids), jnp.asarray(mask))
    a = generate(*args, jax.random.PRNGKey(3), max_new_tokens=12, temperature=1.0, top_p=0.9, eos_ids=(2,))
    b = generate(*args, jax.random.PRNGKey(3), max_new_tokens=12, temperature=1.0, top_p=0.9, eos_ids=(2,))
    c = generate(*args, jax.random.PRNGKey(4), max_new_tokens=12, temperature=1.0, top_p=0.9, eos_ids=(2,))
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])


@pytest.mark.slow
def test_every_row_stops_at_its_eos():
    """Two tokens of an EOS-free greedy run are declared EOS: every row ends at its first one (kept, then
    padding; length counts it) and a row that never meets one runs to max_new_tokens."""
    cfg = tiny_config()
    params = init_params(cfg, jax.random.PRNGKey(1))
    ids, mask = left_pad([[5, 6, 7], [8, 9], [10, 11, 12, 13], [14]], pad_id=0, multiple=1)
    args = (cfg, params, jnp.asarray(ids), jnp.asarray(mask), jax.random.PRNGKey(0))
    free = np.asarray(generate(*args, max_new_tokens=12)[0])
    eos = (int(free[0, 1]), int(free[2, 4]))
    tokens, lengths = generate(*args, max_new_tokens=12, eos_ids=eos, pad_id=0)
    tokens, lengths = np.asarray(tokens), np.asarray(lengths)
    for row in range(4):
        hits = [j for j in range(12) if free[row, j] in eos]
        n = hits[0] + 1 if hits else 12
        assert lengths[row] == n, f"row {row}"
        np.testing.assert_array_equal(tokens[row, :n], free[row, :n])
        assert (tokens[row, n:] == 0).all(), f"row {row} continues after its EOS"
    assert lengths[0] == 2 and len(set(lengths.tolist())) > 1


@pytest.mark.parametrize("spread", [4.0, 0.05], ids=["peaked", "flat"])
def test_nucleus_among_the_top_candidates_equals_the_whole_sorted_vocabulary(spread):
    """nucleus_cutoff keeps the same tokens as top-p over the whole sorted vocabulary: from its top-256
    candidates when their mass reaches top_p (peaked rows), and by sorting everything when it does not
    (flat rows, whose nucleus holds thousands of tokens)."""
    from llm2llm_jax.student.decode import NUCLEUS_CANDIDATES, nucleus_cutoff

    logits = jax.random.normal(jax.random.PRNGKey(7), (4, 5000)) * spread
    for top_p in (0.5, 0.9, 0.95):
        ranked = jnp.sort(logits, axis=-1)[:, ::-1]
        probs = jax.nn.softmax(ranked, axis=-1)
        kept = jnp.sum(jnp.cumsum(probs, axis=-1) - probs < top_p, axis=-1, keepdims=True)
        want = np.asarray(logits >= jnp.take_along_axis(ranked, kept - 1, axis=-1))
        got = np.asarray(logits >= jax.jit(nucleus_cutoff, static_argnums=1)(logits, top_p))
        np.testing.assert_array_equal(got, want)
        sizes = want.sum(axis=-1)
        assert (sizes < NUCLEUS_CANDIDATES).all() if spread > 1 else (sizes > NUCLEUS_CANDIDATES).all(), sizes


def _nucleus_logits():
    """Hand-set next-token distribution over 6 tokens, in shuffled vocabulary order."""
    probs = np.array([0.05, 0.4, 0.1, 0.25, 0.15, 0.05])
    return np.log(probs), probs


def _draw(logits, n, temperature, top_p, seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    rows = jnp.asarray(np.tile(logits, (n, 1)), jnp.float32)
    return np.asarray(choose_token(rows, keys, temperature, top_p))


@pytest.mark.parametrize(
    "top_p,nucleus",
    [(0.35, {1}), (0.6, {1, 3}), (0.7, {1, 3, 4}), (0.85, {1, 3, 4, 2}), (1.0, {0, 1, 2, 3, 4, 5})],
)
def test_top_p_keeps_exactly_the_nucleus(top_p, nucleus):
    """The smallest set of most likely tokens whose mass reaches top_p, sampled in proportion to their
    probabilities (the reference is worked out here from the hand-set distribution)."""
    logits, probs = _nucleus_logits()
    drawn = _draw(logits, 8000, 1.0, top_p)
    assert set(drawn.tolist()) == nucleus
    kept = np.array(sorted(nucleus))
    freq = np.array([(drawn == t).mean() for t in kept])
    np.testing.assert_allclose(freq, probs[kept] / probs[kept].sum(), atol=0.025)


def test_temperature_sampling_follows_the_softmax():
    logits = np.array([2.0, 1.0, 0.0, -1.0])
    for temperature in (0.5, 2.0):
        drawn = _draw(logits, 8000, temperature, 1.0, seed=1)
        want = np.exp(logits / temperature) / np.exp(logits / temperature).sum()
        np.testing.assert_allclose(np.bincount(drawn, minlength=4) / 8000, want, atol=0.025)


def test_a_rows_sample_does_not_depend_on_its_neighbours():
    """With one key per row, a prompt samples the same tokens whichever rows share its batch (the teacher's
    cache stores answers per request on this)."""
    cfg = tiny_config()
    params = init_params(cfg, jax.random.PRNGKey(4))
    prompts = {"a": [5, 6, 7, 8], "b": [9, 10, 11, 12], "c": [13, 14, 15, 16]}
    keys = {name: jax.random.PRNGKey(i) for i, name in enumerate(prompts, 10)}

    def sample(names):
        ids, mask = left_pad([prompts[n] for n in names], pad_id=0, multiple=1)
        tokens, _ = generate(
            cfg,
            params,
            jnp.asarray(ids),
            jnp.asarray(mask),
            jnp.stack([keys[n] for n in names]),
            max_new_tokens=8,
            temperature=1.0,
            top_p=0.95,
        )
        return np.asarray(tokens)

    first, second = sample(["a", "b"]), sample(["c", "a"])
    np.testing.assert_array_equal(first[0], second[1])
    assert not np.array_equal(first[0], first[1])


@pytest.mark.slow
@pytest.mark.multi_device
@pytest.mark.parametrize("kernels", KERNELS)
def test_decoding_on_a_sharded_mesh_equals_one_device(kernels):
    """Params sharded over (2,2,2) and the batch over data x fsdp give the same greedy tokens."""
    from llm2llm_jax.common import parallel
    from llm2llm_jax.model.llama import abstract_params

    cfg = tiny_config(kernels=kernels)
    params = init_params(cfg, jax.random.PRNGKey(2))
    ids, mask = left_pad([[5, 6, 7], [8, 9, 10, 11], [12], [13, 14]], pad_id=0, multiple=1)
    kwargs = dict(max_new_tokens=10, eos_ids=(2,), pad_id=0)
    expected = generate(cfg, params, jnp.asarray(ids), jnp.asarray(mask), jax.random.PRNGKey(0), **kwargs)
    mesh = parallel.make_mesh((2, 2, 2))
    sharded = parallel.place(jax.device_get(params), parallel.param_shardings(abstract_params(cfg), mesh))
    batch_sh = parallel.batch_sharding(mesh)
    got = generate(
        cfg,
        sharded,
        parallel.place(ids, batch_sh),
        parallel.place(mask, batch_sh),
        jax.random.PRNGKey(0),
        **kwargs,
    )
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(expected[0]))
    np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(expected[1]))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_kernel_sets_pick_the_same_tokens_on_smollm2(smollm2, dtype):
    """Greedy decoding of the real SmolLM2 with the cpu and the xla kernels, 8 prompts of different
    lengths: in f32 the same 32 tokens everywhere. Under bf16 compute the sets round differently (the
    xla set keeps its cache, scores and logits in bf16, as transformers does; the cpu set keeps them in
    f32), so once two candidates are close a continuation may drift: the first 8 tokens must agree."""
    cfg, params, tok, _ = smollm2
    ids, mask = left_pad([tok(p)["input_ids"] for p in REAL_PROMPTS], tok.pad_token_id, multiple=1)
    picked = []
    for kernels in KERNELS:
        dec_cfg, dec_params = inference_weights(cfg.replace(kernels=kernels, dtype=dtype), params)
        tokens, lengths = generate(
            dec_cfg,
            dec_params,
            jnp.asarray(ids),
            jnp.asarray(mask),
            jax.random.PRNGKey(0),
            max_new_tokens=32,
            eos_ids=cfg.eos_token_ids,
            pad_id=tok.pad_token_id,
        )
        picked.append((np.asarray(tokens), np.asarray(lengths)))
    (cpu, cpu_lengths), (xla, xla_lengths) = picked
    assert (cpu_lengths > 8).sum() >= 4  # mostly real answers, not immediate EOS
    agree = 32 if dtype == "float32" else 8
    np.testing.assert_array_equal(cpu[:, :agree], xla[:, :agree])
    if dtype == "float32":
        np.testing.assert_array_equal(cpu_lengths, xla_lengths)
