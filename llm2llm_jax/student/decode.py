"""KV-cache decoding for left-padded batches: one jitted prefill + `lax.while_loop`, greedy or top-p
sampling."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from llm2llm_jax.common import compilations, parallel
from llm2llm_jax.model.config import LlamaConfig
from llm2llm_jax.model.llama import LlamaForCausalLM, init_cache, shared_prefix_cache


def choose_token(logits: jax.Array, rng: jax.Array, temperature: float, top_p: float) -> jax.Array:
    """Greedy when temperature == 0 (a static choice), else temperature + nucleus sampling."""
    if temperature == 0.0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits / temperature
    if top_p < 1.0:
        logits = jnp.where(logits < nucleus_cutoff(logits, top_p), -jnp.inf, logits)
    if rng.ndim == 2:  # one key per row: a row's sample does not depend on its batch neighbours
        return jax.vmap(lambda k, lg: jax.random.categorical(k, lg))(rng, logits).astype(jnp.int32)
    return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)


# Top-p looks for its nucleus among this many most likely tokens first: sorting a whole vocabulary every step
# cost far more than the model's own step on CPU, and the nucleus is almost always far smaller.
NUCLEUS_CANDIDATES = 256


def nucleus_cutoff(logits: jax.Array, top_p: float) -> jax.Array:
    """[B, 1]: the smallest logit top-p keeps per row, the logits of the smallest set of most likely tokens
    whose probability reaches top_p (the top token always survives). Found among the NUCLEUS_CANDIDATES most
    likely tokens when their mass reaches top_p, else over the whole sorted vocabulary."""

    def cutoff_among(ranked, probs):
        mass_before = jnp.cumsum(probs, axis=-1) - probs
        kept = jnp.sum(mass_before < top_p, axis=-1, keepdims=True)
        return jnp.take_along_axis(ranked, kept - 1, axis=-1), kept

    def whole_vocabulary(_):
        ranked = jnp.sort(logits, axis=-1)[:, ::-1]
        return cutoff_among(ranked, jax.nn.softmax(ranked, axis=-1))[0]

    k = min(NUCLEUS_CANDIDATES, logits.shape[-1])
    top = jax.lax.top_k(logits, k)[0]
    cutoff, kept = cutoff_among(top, jnp.exp(top - jax.nn.logsumexp(logits, axis=-1, keepdims=True)))
    return jax.lax.cond(jnp.all(kept < k), lambda _: cutoff, whole_vocabulary, None)


@functools.partial(
    jax.jit, static_argnames=("cfg", "max_new_tokens", "temperature", "top_p", "eos_ids", "pad_id")
)
def generate(
    cfg: LlamaConfig,
    params,
    input_ids,
    attention_mask,
    rng,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    eos_ids: tuple = (),
    pad_id: int = 0,
):
    """Decode up to `max_new_tokens` for a left-padded batch.

    rng: one PRNG key for the batch, or a [B, 2] stack of keys (one per row) so that each row's
    sample is reproducible on its own (the teacher cache relies on this).

    Returns (tokens [B, max_new_tokens] int32 with `pad_id` after each row's EOS, lengths [B]:
    tokens generated per row including the EOS).
    """
    if max_new_tokens < 1:
        raise ValueError(f"generate: max_new_tokens must be at least 1, got {max_new_tokens}")
    cfg, params = inference_weights(cfg, params)
    model = LlamaForCausalLM(cfg)
    b, t = input_ids.shape
    cache = init_cache(cfg, b, t + max_new_tokens - 1)  # the last new token is never fed back
    last = jnp.full((b, 1), t - 1, jnp.int32)  # left padding: every row's newest token is at t - 1
    logits, cache = model.apply(
        {"params": params}, input_ids, attention_mask, cache=cache, logit_positions=last
    )
    return _decode_loop(
        model, params, cache, logits[:, -1], rng, max_new_tokens, temperature, top_p, eos_ids, pad_id
    )


@functools.partial(
    jax.jit, static_argnames=("cfg", "max_new_tokens", "temperature", "top_p", "eos_ids", "pad_id")
)
def generate_after_prefix(
    cfg: LlamaConfig,
    params,
    prefix_ids,
    input_ids,
    attention_mask,
    rng,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    eos_ids: tuple = (),
    pad_id: int = 0,
):
    """`generate` for prompts that all begin with the same tokens `prefix_ids` [P], followed by each row's own
    left-padded rest `input_ids` [B, T] (at least one token per row). The prefix is read once and its KV
    cache copied to every row (the padding of the rests then sits between prefix and rest, masked out of
    attention and of the positions); the same tokens as `generate` on the whole prompts, up to rounding."""
    if max_new_tokens < 1:
        raise ValueError(f"generate_after_prefix: max_new_tokens must be at least 1, got {max_new_tokens}")
    cfg, params = inference_weights(cfg, params)
    logits, cache = prefill_after_prefix(
        cfg, params, prefix_ids, input_ids, attention_mask, max_new_tokens - 1
    )
    return _decode_loop(
        LlamaForCausalLM(cfg), params, cache, logits, rng, max_new_tokens, temperature, top_p, eos_ids, pad_id
    )


def prefill_after_prefix(cfg: LlamaConfig, params, prefix_ids, input_ids, attention_mask, free_slots: int):
    """(next-token logits [B, V] after each row's prompt, the KV cache holding it with `free_slots` left) for
    prompts `prefix_ids` + row r of the left-padded `input_ids`: the prefix read once, its cache copied."""
    b, t = input_ids.shape
    cache = shared_prefix_cache(cfg, params, prefix_ids, b, prefix_ids.shape[0] + t + free_slots)
    last = jnp.full((b, 1), t - 1, jnp.int32)
    logits, cache = LlamaForCausalLM(cfg).apply(
        {"params": params}, input_ids, attention_mask, cache=cache, logit_positions=last
    )
    return logits[:, -1], cache


def _decode_loop(
    model,
    params,
    cache,
    logits,
    rng,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    eos_ids: tuple,
    pad_id: int,
):
    """From the logits after each row's prompt (and the cache holding it): (tokens, lengths) as `generate`
    returns them."""
    b = logits.shape[0]
    eos = jnp.asarray(eos_ids if eos_ids else (-1,), jnp.int32)

    def pick(step, tokens, done, logits, rng):
        """Choose token `step` of every row from the logits of the step before (pad once a row is done)."""
        if rng.ndim == 2:
            pair = jax.vmap(jax.random.split)(rng)
            rng, sub = pair[:, 0], pair[:, 1]
        else:
            rng, sub = jax.random.split(rng)
        tok = jnp.where(done, pad_id, choose_token(logits, sub, temperature, top_p))
        return tokens.at[:, step].set(tok), done | jnp.isin(tok, eos), tok, rng

    # The loop feeds back all but the last token: the last one is picked after it, since the forward
    # pass over it would produce logits nobody reads (a quarter of the steps at max_new_tokens=4).
    def cond(state):
        step, _, done, _, _, _ = state
        return (step < max_new_tokens - 1) & ~jnp.all(done)

    def body(state):
        step, tokens, done, cache, last_logits, rng = state
        tokens, done, tok, rng = pick(step, tokens, done, last_logits, rng)
        logits, cache = model.apply(
            {"params": params}, tok[:, None], jnp.ones((b, 1), jnp.int32), cache=cache
        )
        return step + 1, tokens, done, cache, logits[:, -1], rng

    state = (
        jnp.int32(0),
        jnp.full((b, max_new_tokens), pad_id, jnp.int32),
        jnp.zeros((b,), bool),
        cache,
        logits,
        rng,
    )
    step, tokens, done, _, last_logits, rng = jax.lax.while_loop(cond, body, state)
    # When every row finished early this writes padding at `step`, which is padding already.
    tokens, _, _, _ = pick(step, tokens, done, last_logits, rng)
    is_eos = jnp.isin(tokens, eos)
    first_eos = jnp.where(is_eos.any(-1), jnp.argmax(is_eos, axis=-1) + 1, max_new_tokens)
    return tokens, first_eos


def inference_weights(cfg: LlamaConfig, params) -> tuple[LlamaConfig, dict]:
    """The same model laid out for a decode loop: float weights cast to the compute dtype, and a tied
    model given its own [embed, vocab] head (the embedding transposed).

    Both are loop-invariant work that XLA:CPU otherwise redoes every token (transposing the
    49152 x 576 embedding alone took about a tenth of a batch-32 step); the arithmetic is unchanged,
    so outputs are bit-identical. `generate` applies it inside its jit, where it is a no-op on weights
    already in this layout: callers that decode many batches with the same weights call it once
    (eagerly, sharded arrays stay sharded) and pass its result, instead of paying the cast and the
    transpose in every call (4-11% of a batch-32 call of SmolLM2).
    """
    dtype = cfg.jnp_dtype
    params = jax.tree.map(lambda w: w.astype(dtype) if jnp.issubdtype(w.dtype, jnp.floating) else w, params)
    cfg = cfg.replace(param_dtype=cfg.dtype)
    if cfg.tie_word_embeddings:
        params = dict(params, lm_head={"kernel": params["embed_tokens"]["embedding"].T})
        cfg = cfg.replace(
            tie_word_embeddings=False, lora_targets=tuple(t for t in cfg.lora_targets if t != "lm_head")
        )
    return cfg, params


def padded_width(sequences: Sequence[Sequence[int]], multiple: int) -> int:
    """The longest length rounded up to `multiple` (fewer distinct jit shapes)."""
    return -(-max(len(s) for s in sequences) // multiple) * multiple


def left_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, multiple: int = 8, width: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Left-pad token lists to a common length rounded up to `multiple` (fewer distinct jit shapes), or to
    exactly `width` when it is given."""
    needed = padded_width(sequences, 1)
    if width and width < needed:
        raise ValueError(f"left_pad: width {width} is shorter than the longest list ({needed} tokens)")
    width = width or padded_width(sequences, multiple)
    ids = np.full((len(sequences), width), pad_id, np.int32)
    mask = np.zeros((len(sequences), width), np.int32)
    for i, s in enumerate(sequences):
        if len(s):
            ids[i, width - len(s) :] = s
            mask[i, width - len(s) :] = 1
    return ids, mask


def decode_batch(
    cfg: LlamaConfig,
    params,
    tokenizer,
    token_lists: Sequence[Sequence[int]],
    batch_size: int,
    *,
    max_new_tokens: int,
    rng=None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    pad_multiple: int = 32,
    width: int = 0,
    mesh=None,
    prefix: Sequence[int] = (),
) -> list[tuple[str, int]]:
    """(text, tokens generated) for up to `batch_size` prompts, padded to a fixed batch (one compilation).

    Looping over many batches: pass `inference_weights(cfg, params)` (prepared once) as cfg, params.

    width > 0: the prompts left-padded to exactly this many tokens (else their longest, rounded up to
    `pad_multiple`). rng: one key, or one key per prompt (padding rows get key 0). mesh: when several
    processes share it, inputs are placed replicated and outputs gathered. prefix: tokens that begin every
    prompt, left out of `token_lists` (each of which keeps at least one token): read once for the whole
    batch (`generate_after_prefix`).
    """
    n = len(token_lists)
    pad_id = tokenizer.pad_token_id
    rows = list(token_lists) + [token_lists[-1]] * (batch_size - n)
    ids, mask = left_pad(rows, pad_id, multiple=pad_multiple, width=width)
    if rng is None:
        rng = jax.random.PRNGKey(0)
    elif isinstance(rng, (list, tuple)):
        rng = jnp.stack(list(rng) + [jax.random.PRNGKey(0)] * (batch_size - n))
    program, args, options = _program_call(
        cfg, params, ids, mask, rng, prefix, mesh, pad_id, max_new_tokens, temperature, top_p
    )
    ahead = compilations.compiled_ahead(_call_key(program, cfg, args, options))
    with compilations.compiled_for(decode_purpose(ids.shape, len(prefix), options)):
        tokens, lengths = ahead(*args) if ahead else program(cfg, *args, **options)
    tokens, lengths = parallel.to_host(tokens), parallel.to_host(lengths)
    return [
        (tokenizer.decode(tokens[r, : lengths[r]], skip_special_tokens=True), int(lengths[r]))
        for r in range(n)
    ]


def decode_purpose(rows: tuple, prefix_length: int, options: dict) -> str:
    """What a decoding program is compiled for, as the run's compile log names it:
    'batch 32 x 24, prefix 20, 4 new tokens, greedy'."""
    how = "greedy" if options["temperature"] == 0 else "sampled"
    return (
        f"batch {rows[0]} x {rows[1]}, prefix {prefix_length}, {options['max_new_tokens']} new tokens, {how}"
    )


def _program_call(cfg, params, ids, mask, rng, prefix, mesh, pad_id, max_new_tokens, temperature, top_p):
    """(the jitted program, its array arguments, its static options) that decode one batch."""
    if mesh is not None:
        ids, mask = parallel.replicate_inputs(mesh, ids, mask)
    options = dict(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        eos_ids=cfg.eos_token_ids,
        pad_id=pad_id,
    )
    if len(prefix):
        prefix_ids = np.asarray(prefix, np.int32)
        if mesh is not None:
            (prefix_ids,) = parallel.replicate_inputs(mesh, prefix_ids)
        return generate_after_prefix, (params, prefix_ids, ids, mask, rng), options
    return generate, (params, ids, mask, rng), options


def _call_key(program, cfg, args, options) -> tuple:
    """What a compiled decoding program is specific to: its static options and its arguments."""
    return program, cfg, tuple(sorted(options.items())), compilations.signature(args)


_INFERENCE_SHAPES: dict = {}  # inference_shapes by config and weights' signature: once per process


def inference_shapes(cfg: LlamaConfig, params) -> tuple[LlamaConfig, dict]:
    """`inference_weights` without computing it: its config, and its weights' shapes, dtypes and shardings
    (`params`: arrays or ShapeDtypeStructs that carry their shardings)."""
    key = (cfg, compilations.signature(params))
    if key in _INFERENCE_SHAPES:
        return _INFERENCE_SHAPES[key]
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), params)
    configs = []

    def prepare(p):
        prepared_cfg, prepared = inference_weights(cfg, p)
        configs.append(prepared_cfg)
        return prepared

    shardings = jax.jit(prepare).lower(abstract).compile().output_shardings
    shapes = jax.eval_shape(prepare, abstract)
    _INFERENCE_SHAPES[key] = (
        configs[0],
        jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings),
    )
    return _INFERENCE_SHAPES[key]


def compile_ahead(
    cfg: LlamaConfig,
    params,
    pad_id: int,
    batch_size: int,
    width: int,
    prefix_length: int,
    *,
    max_new_tokens: int,
    mesh=None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    key_per_row: bool = False,
) -> None:
    """Start compiling, in the background, the program `decode_batch` runs for batches of `batch_size`
    rests `width` wide after a shared prefix of `prefix_length` tokens, once per process: greedy, or sampled
    at `temperature` and `top_p` with one PRNG key for the batch or (`key_per_row`) one per row. cfg,
    params: as `inference_shapes` or `inference_weights` give them (shapes are enough). A later
    `decode_batch` with that shape and weights of those shapes and shardings runs it (waiting for it if need
    be); any other compiles at its first call."""
    ids = np.full((batch_size, width), pad_id, np.int32)
    prefix = np.zeros((prefix_length,), np.int32)
    rng = jax.random.PRNGKey(0)
    if key_per_row:
        rng = jnp.stack([rng] * batch_size)  # as `decode_batch` stacks a list of keys
    program, args, options = _program_call(
        cfg,
        params,
        ids,
        np.zeros_like(ids),
        rng,
        prefix,
        mesh,
        pad_id,
        max_new_tokens,
        temperature,
        top_p,
    )
    compilations.compile_ahead(
        _call_key(program, cfg, args, options),
        lambda: program.lower(cfg, *args, **options).compile(),
        decode_purpose(ids.shape, prefix_length, options),
    )


def generate_text(
    cfg: LlamaConfig,
    params,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
) -> list[str]:
    """Host-side convenience: tokenize, left-pad, decode, detokenize up to each row's EOS."""
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids, mask = left_pad(encoded, pad_id)
    tokens, lengths = generate(
        cfg,
        params,
        jnp.asarray(ids),
        jnp.asarray(mask),
        jax.random.PRNGKey(seed),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        eos_ids=cfg.eos_token_ids,
        pad_id=pad_id,
    )
    tokens, lengths = np.asarray(tokens), np.asarray(lengths)
    return [tokenizer.decode(row[:n], skip_special_tokens=True) for row, n in zip(tokens, lengths)]
