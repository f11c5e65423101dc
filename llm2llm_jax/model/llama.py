"""The decoder (Llama, and the families that differ from it by switches): RMSNorm, rotate-half RoPE, GQA
attention with an optional KV cache and sliding windows, gated MLP, scan + remat.

The family's switches (`LlamaConfig.traits`): q/k/v biases (Qwen2), per-head query/key norms (Qwen3,
Gemma 3), Gemma's (1 + weight) norms around attention and MLP with embeddings scaled by sqrt(hidden)
and a GELU-tanh MLP; per layer, full or sliding-window attention with its own RoPE base (Gemma 3).

Every parameter carries logical axis names (see `parallel.py` for how they map onto a mesh):
  vocab, embed, q_heads, kv_heads, mlp, norm, and `layers` for the scanned stack.
Activations are constrained with act_batch / act_length / act_embed / act_heads / act_mlp.

The matmuls, the attention products and the KV cache layout come from the kernel set the config
names (`model/kernels.py`, `LlamaConfig.kernels`); this module never asks which hardware it runs on.
Numerics follow transformers' LlamaForCausalLM exactly in f32: RMSNorm in f32 then cast,
cos/sin computed in f32, softmax in f32.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from llm2llm_jax.model import attention, kernels
from llm2llm_jax.model.config import LlamaConfig

Array = jax.Array


def _init(names, stddev=0.02):
    return nn.with_logical_partitioning(nn.initializers.normal(stddev), names)


# ---------------------------------------------------------------------------- RoPE (pure)
def rope_inv_freq(cfg: LlamaConfig, local: bool = False) -> np.ndarray:
    """Inverse frequencies for rotate-half RoPE, with `linear` or `llama3` scaling from the config; `local`:
    those of the sliding-window layers (base `rope_local_theta`, unscaled, when the config sets one)."""
    d = cfg.head_dim
    own_base = local and cfg.rope_local_theta is not None
    base = cfg.rope_local_theta if own_base else cfg.rope_theta
    inv_freq = 1.0 / (base ** (np.arange(0, d, 2, dtype=np.float64) / d))
    scaling = {} if own_base else cfg.rope_scaling_dict
    rope_type = scaling.get("rope_type", "default")
    if rope_type == "linear":
        inv_freq = inv_freq / scaling["factor"]
    elif rope_type == "llama3":
        factor = scaling["factor"]
        low, high = scaling.get("low_freq_factor", 1.0), scaling.get("high_freq_factor", 4.0)
        old_ctx = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        # Long wavelengths are slowed by `factor`, short ones kept, the band between interpolated.
        scaled = np.where(wavelen > old_ctx / low, inv_freq / factor, inv_freq)
        smooth = (old_ctx / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old_ctx / high) & (wavelen <= old_ctx / low)
        inv_freq = np.where(medium, smoothed, scaled)
    return inv_freq.astype(np.float32)


def rope_cos_sin(positions: Array, inv_freq: np.ndarray) -> tuple[Array, Array]:
    """cos, sin of shape [B, T, head_dim] in f32 (the two halves repeat, HF layout)."""
    freqs = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)[None, None, :]
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x: Array, cos: Array, sin: Array) -> Array:
    """x: [B, T, heads, D]. Rotate-half: x*cos + concat(-x2, x1)*sin."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    cos = cos[:, :, None, :].astype(x.dtype)
    sin = sin[:, :, None, :].astype(x.dtype)
    return x * cos + rotated * sin


# ---------------------------------------------------------------------------- modules
class RMSNorm(nn.Module):
    """RMSNorm over the last axis (hidden, or head_dim for query/key norms), normalised in f32. Llama
    casts back and multiplies by the weight; Gemma multiplies by (1 + weight) in f32, then casts."""

    cfg: LlamaConfig
    features: int = 0  # 0: hidden_size

    @nn.compact
    def __call__(self, x):
        plus_one = self.cfg.traits.norm_plus_one
        init = nn.initializers.zeros if plus_one else nn.initializers.ones
        weight = self.param(
            "weight",
            nn.with_logical_partitioning(init, ("norm",)),
            (self.features or self.cfg.hidden_size,),
            self.cfg.jnp_param_dtype,
        )
        in_dtype = x.dtype
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.cfg.rms_norm_eps)
        if plus_one:
            return (x32 * (1.0 + weight.astype(jnp.float32))).astype(in_dtype)
        return weight.astype(self.cfg.jnp_dtype) * x32.astype(in_dtype)


class LoRADense(nn.Module):
    """Bias-free Dense whose kernel is [in, out]; with cfg.lora_rank > 0 and this projection among
    cfg.lora_targets it adds (x @ lora_a @ lora_b) * alpha / rank. lora_b starts at zero, so the
    adapted model starts equal to the base model."""

    cfg: LlamaConfig
    features: int
    names: tuple
    f32_output: bool = (
        False  # the LM head: its product uncast (f32 from the cpu kernels); logits are made f32 after
    )
    use_bias: bool = False

    @nn.compact
    def __call__(self, x):
        cfg = self.cfg
        kernel = self.param("kernel", _init(self.names), (x.shape[-1], self.features), cfg.jnp_param_dtype)
        x = x.astype(cfg.jnp_dtype)
        mm = kernels.for_config(cfg).matmul
        y = mm(x, kernel)
        if cfg.lora_rank and self.name in cfg.lora_targets:
            r = cfg.lora_rank
            a = self.param(
                "lora_a", _init((self.names[0], "lora_rank"), 1.0 / r), (x.shape[-1], r), cfg.jnp_param_dtype
            )
            b = self.param(
                "lora_b",
                nn.with_logical_partitioning(nn.initializers.zeros, ("lora_rank", self.names[1])),
                (r, self.features),
                cfg.jnp_param_dtype,
            )
            low = mm(x, a).astype(cfg.jnp_dtype)
            y = y + mm(low, b) * (cfg.lora_alpha / r)
        if self.use_bias:
            bias = self.param(
                "bias",
                nn.with_logical_partitioning(nn.initializers.zeros, (self.names[1],)),
                (self.features,),
                cfg.jnp_param_dtype,
            )
            y = y + bias.astype(y.dtype)
        return y if self.f32_output else y.astype(cfg.jnp_dtype)


def _dense(cfg: LlamaConfig, features: int, names, name: str, use_bias: bool = False):
    return LoRADense(cfg, features, tuple(names), use_bias=use_bias, name=name)


class Attention(nn.Module):
    cfg: LlamaConfig

    @nn.compact
    def __call__(self, x, cos, sin, mask, layer_cache=None, cache_index=None):
        cfg = self.cfg
        b, t, _ = x.shape
        h, kvh, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        bias = cfg.traits.attention_bias
        q = _dense(cfg, h * d, ("embed", "q_heads"), "q_proj", bias)(x).reshape(b, t, h, d)
        k = _dense(cfg, kvh * d, ("embed", "kv_heads"), "k_proj", bias)(x).reshape(b, t, kvh, d)
        v = _dense(cfg, kvh * d, ("embed", "kv_heads"), "v_proj", bias)(x).reshape(b, t, kvh, d)
        q = nn.with_logical_constraint(q, ("act_batch", "act_length", "act_heads", None))
        if cfg.traits.qk_norm:
            q, k = RMSNorm(cfg, d, name="q_norm")(q), RMSNorm(cfg, d, name="k_norm")(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cfg.query_pre_attn_scalar is not None and cfg.query_pre_attn_scalar != d:
            # the kernels divide the scores by sqrt(head_dim); this family divides by
            # sqrt(query_pre_attn_scalar)
            q = q * jnp.asarray(math.sqrt(d / cfg.query_pre_attn_scalar), q.dtype)

        new_cache = None
        if layer_cache is None:
            out = kernels.for_config(cfg).attend(q, k, v, mask, cfg.jnp_dtype)
        else:  # this step's keys and values go to slots [cache_index, cache_index + t); attend over all
            out, new_cache = kernels.for_config(cfg).attend_cached(
                q, k, v, layer_cache, cache_index, mask.dense
            )
        out = out.astype(cfg.jnp_dtype).reshape(b, t, h * d)
        out = _dense(cfg, cfg.hidden_size, ("q_heads", "embed"), "o_proj")(out)
        return out, new_cache


class MLP(nn.Module):
    cfg: LlamaConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.cfg
        gate = _dense(cfg, cfg.intermediate_size, ("embed", "mlp"), "gate_proj")(x)
        up = _dense(cfg, cfg.intermediate_size, ("embed", "mlp"), "up_proj")(x)
        gated = nn.gelu(gate, approximate=True) if cfg.traits.activation == "gelu_tanh" else nn.silu(gate)
        act = nn.with_logical_constraint(gated * up, ("act_batch", "act_length", "act_mlp"))
        return _dense(cfg, cfg.hidden_size, ("mlp", "embed"), "down_proj")(act)


class DecoderLayer(nn.Module):
    """One block. `views` holds (cos, sin, AttentionMask) for full attention and, when the config has
    sliding layers, for the window; `sliding` (a bool, or a scalar scanned over the stack) says which
    this layer reads."""

    cfg: LlamaConfig

    @nn.compact
    def __call__(self, x, views, cache_index, layer_cache, sliding):
        cfg = self.cfg
        if "sliding" not in views:
            cos, sin, mask = views["full"]
        elif "full" not in views:
            cos, sin, mask = views["sliding"]
        elif isinstance(sliding, bool):  # an unrolled stack knows each layer's kind when tracing
            cos, sin, mask = views["sliding" if sliding else "full"]
        else:  # a scanned stack with both kinds: pick per layer, the window becomes a traced value
            (cos_s, sin_s, slide), (cos_f, sin_f, full) = views["sliding"], views["full"]
            cos, sin = jnp.where(sliding, cos_s, cos_f), jnp.where(sliding, sin_s, sin_f)
            mask = slide._replace(
                dense=jnp.where(sliding, slide.dense, full.dense),
                window=jnp.where(sliding, slide.window, full.dense.shape[-1]),
            )
        x = nn.with_logical_constraint(x, ("act_batch", "act_length", "act_embed"))
        attn_out, new_cache = Attention(cfg, name="self_attn")(
            RMSNorm(cfg, name="input_layernorm")(x), cos, sin, mask, layer_cache, cache_index
        )
        if cfg.traits.sandwich_norms:  # a norm after each sub-block too, and a pre-MLP norm of its own
            x = x + RMSNorm(cfg, name="post_attention_layernorm")(attn_out)
            mlp_out = MLP(cfg, name="mlp")(RMSNorm(cfg, name="pre_feedforward_layernorm")(x))
            return x + RMSNorm(cfg, name="post_feedforward_layernorm")(mlp_out), new_cache
        x = x + attn_out
        x = x + MLP(cfg, name="mlp")(RMSNorm(cfg, name="post_attention_layernorm")(x))
        return x, new_cache


def _remat_policy(name: str):
    return {
        "full": None,  # save nothing, recompute everything
        "dots": jax.checkpoint_policies.checkpoint_dots,
        "dots_with_no_batch_dims": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
    }[name]


@functools.cache
def traced_once_layer(cfg: LlamaConfig, kind: str, window, rules):
    """A `kind` ('full' or 'sliding') layer of an unrolled stack as a function of (its params, x, its view's
    cos, sin, dense mask, valid slots and lengths, cache_index, its KV cache), with the config's remat.

    Jitted with `inline=True`: JAX traces it once per set of input shapes and pastes that trace into every
    layer that calls it, so tracing a 30-layer step costs about one layer's Python, and the program is the
    one the layers called as modules would give. `window` (an int or None) stays a constant, and the
    logical-axis `rules` are part of the key because each trace bakes in the constraints they name.
    """

    def layer(params, x, view, cache_index, layer_cache):
        cos, sin, dense, valid, lengths = view
        views = {kind: (cos, sin, attention.AttentionMask(dense, valid, window, lengths))}
        module = DecoderLayer(cfg)
        return module.apply({"params": params}, x, views, cache_index, layer_cache, kind == "sliding")

    if cfg.remat_policy != "none":
        layer = jax.checkpoint(layer, policy=_remat_policy(cfg.remat_policy), prevent_cse=True)
    return jax.jit(layer, inline=True)


def _hashable(rules) -> tuple:
    """Logical-axis rules as nested tuples (a rule's mesh axes may be given as a list)."""
    return tuple((name, tuple(axes) if isinstance(axes, list) else axes) for name, axes in rules)


class LlamaForCausalLM(nn.Module):
    """The causal LM of every supported family. Call with input_ids [B, T]; returns (logits [B, T, V] f32,
    new_cache or None).

    attention_mask [B, T]: 1 for real tokens, 0 for padding (left padding for generation).
    positions [B, T]: RoPE positions; default is cumsum(attention_mask) - 1, which handles left padding.
    cache: from `init_cache`; when given, this call's tokens are written at cache["index"].
    logit_positions [B, K]: when given, logits only at these positions ([B, K, V]). Training needs
    them only where the next token is a target and decoding only at the last position, and the
    vocabulary projection is the model's largest matmul.
    right_padded: the caller's promise that every row's real tokens come first (training batches
    are collated so); attention kernels may then go by each row's length instead of a mask.
    """

    cfg: LlamaConfig

    @nn.compact
    def __call__(
        self,
        input_ids,
        attention_mask=None,
        positions=None,
        cache=None,
        logit_positions=None,
        right_padded=False,
    ):
        cfg = _with_kernels(self.cfg)
        b, t = input_ids.shape
        if attention_mask is None:
            attention_mask = jnp.ones((b, t), jnp.int32)
        attention_mask = attention_mask.astype(bool)
        if positions is None:
            positions = jnp.maximum(jnp.cumsum(attention_mask, axis=-1) - 1, 0)
            if cache is not None:
                positions = positions + cache["next_position"][:, None]
        if cache is None:
            cache_index, layer_caches, new_valid = jnp.int32(0), None, None
            query_slot, key_slot, valid = jnp.arange(t), jnp.arange(t), attention_mask
        else:
            cache_index = cache["index"]
            new_valid = jax.lax.dynamic_update_slice(cache["valid"], attention_mask, (0, cache_index))
            query_slot, key_slot, valid = (
                cache_index + jnp.arange(t),
                jnp.arange(new_valid.shape[1]),
                new_valid,
            )
            layer_caches = {"k": cache["k"], "v": cache["v"]}
        causal = key_slot[None, :] <= query_slot[:, None]
        lengths = attention_mask.sum(axis=-1) if right_padded and cache is None else None
        # Each kind of layer the config has gets its RoPE and mask; a sliding layer's query sees the
        # `sliding_window` latest slots (itself included), as transformers' sliding masks do.
        sliding_layers = cfg.sliding_layers
        views = {}
        if not all(sliding_layers):
            dense = causal[None] & valid[:, None, :]
            views["full"] = (
                *rope_cos_sin(positions, rope_inv_freq(cfg)),
                attention.AttentionMask(dense, valid, None, lengths),
            )
        if any(sliding_layers):
            in_window = query_slot[:, None] - key_slot[None, :] < cfg.sliding_window
            dense = (causal & in_window)[None] & valid[:, None, :]
            views["sliding"] = (
                *rope_cos_sin(positions, rope_inv_freq(cfg, local=True)),
                attention.AttentionMask(dense, valid, cfg.sliding_window, lengths),
            )
        sliding = jnp.asarray(sliding_layers)

        # Rows gathered from the table in its own dtype, then cast: the backward then adds the rows'
        # gradients into the f32 table gradient in f32, not in the compute dtype.
        embed = nn.Embed(
            cfg.vocab_size,
            cfg.hidden_size,
            dtype=cfg.jnp_param_dtype,
            param_dtype=cfg.jnp_param_dtype,
            embedding_init=_init(("vocab", "embed")),
            name="embed_tokens",
        )
        x = embed(input_ids).astype(cfg.jnp_dtype)
        if cfg.traits.scaled_embeddings:
            x = x * jnp.asarray(math.sqrt(cfg.hidden_size), x.dtype)

        if cfg.scan_layers:
            layer_cls = DecoderLayer
            if cfg.remat_policy != "none":
                layer_cls = nn.remat(
                    DecoderLayer, policy=_remat_policy(cfg.remat_policy), prevent_cse=False, static_argnums=()
                )
            stack = nn.scan(
                layer_cls,
                variable_axes={"params": 0},
                split_rngs={"params": True},
                in_axes=(nn.broadcast, nn.broadcast, 0, 0),
                length=cfg.num_hidden_layers,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )
            x, new_layer_caches = stack(cfg, name="layers")(x, views, cache_index, layer_caches, sliding)
        else:
            # One buffer per layer (see init_cache): each is updated in place, never sliced or restacked.
            ks, vs = [], []
            for i in range(cfg.num_hidden_layers):
                lc = None if layer_caches is None else {"k": layer_caches["k"][i], "v": layer_caches["v"][i]}
                if self.is_initializing():  # the layer's params are created by calling it as a module
                    module = DecoderLayer(cfg, name=f"layers_{i}")
                    x, nc = module(x, views, cache_index, lc, sliding_layers[i])
                else:
                    kind = "sliding" if sliding_layers[i] else "full"
                    cos_i, sin_i, mask = views[kind]
                    layer = traced_once_layer(cfg, kind, mask.window, _hashable(nn.get_logical_axis_rules()))
                    x, nc = layer(
                        self.variables["params"][f"layers_{i}"],
                        x,
                        (cos_i, sin_i, mask.dense, mask.valid, mask.lengths),
                        cache_index,
                        lc,
                    )
                if nc is not None:
                    ks.append(nc["k"])
                    vs.append(nc["v"])
            new_layer_caches = {"k": tuple(ks), "v": tuple(vs)} if ks else None

        if logit_positions is not None:
            x = jnp.take_along_axis(x, logit_positions[:, :, None].astype(jnp.int32), axis=1)
        x = RMSNorm(cfg, name="norm")(x)
        if cfg.tie_word_embeddings:
            logits = kernels.for_config(cfg).tied_head(x, embed.embedding)
        else:
            logits = LoRADense(cfg, cfg.vocab_size, ("embed", "vocab"), f32_output=True, name="lm_head")(x)
        logits = logits.astype(jnp.float32)

        new_cache = None
        if cache is not None:
            new_cache = {
                "k": new_layer_caches["k"],
                "v": new_layer_caches["v"],
                "valid": new_valid,
                "index": cache_index + t,
                "next_position": positions[:, -1] + 1,
            }
        return logits, new_cache


def init_cache(cfg: LlamaConfig, batch: int, max_len: int, dtype=None) -> dict:
    """An empty KV cache for `batch` rows and `max_len` slots (prompt plus new tokens), laid out as the
    config's kernel set reads it (`Kernels.init_cache`); dtype None: that set's default (the compute
    dtype for `xla`, f32 for `cpu`)."""
    cache = kernels.for_config(_with_kernels(cfg)).init_cache(cfg, batch, max_len, dtype)
    return dict(
        cache,
        valid=jnp.zeros((batch, max_len), bool),
        index=jnp.int32(0),
        next_position=jnp.zeros((batch,), jnp.int32),
    )


def repeat_cache_rows(cache: dict, copies: int, scanned: bool) -> dict:
    """Every row of a KV cache `copies` times in a row (row r becomes rows r*copies ... r*copies + copies -
    1): a prompt's cache shared by several continuations of it."""
    rep = lambda x, axis=0: jnp.repeat(x, copies, axis=axis)  # noqa: E731
    layer_axis = 1 if scanned else 0  # a scanned cache stacks the layers in front of the batch
    kv = {
        name: (rep(cache[name], layer_axis) if scanned else tuple(rep(x) for x in cache[name]))
        for name in ("k", "v")
    }
    return dict(
        kv, valid=rep(cache["valid"]), next_position=rep(cache["next_position"]), index=cache["index"]
    )


def shared_prefix_cache(cfg: LlamaConfig, params: dict, prefix_ids, rows: int, slots: int) -> dict:
    """A KV cache of `slots` slots for `rows` rows, each holding `prefix_ids` [P]: the prefix read once and
    its cache copied to every row, whose own tokens then continue after it."""
    p = prefix_ids.shape[0]
    _, cache = LlamaForCausalLM(cfg).apply(
        {"params": params},
        prefix_ids[None],
        jnp.ones((1, p), jnp.int32),
        cache=init_cache(cfg, 1, slots),
        logit_positions=jnp.full((1, 1), p - 1, jnp.int32),
    )
    return repeat_cache_rows(cache, rows, cfg.scan_layers)


def _with_kernels(cfg: LlamaConfig) -> LlamaConfig:
    """`cfg` with its 'auto' kernels and attention resolved against jax.devices(), the devices a call
    outside a mesh runs on. Entry points that build a model for a mesh (Trainer, the controller) resolve
    them for that mesh first (`LlamaConfig.with_kernels_for`), so this only fills in for direct calls."""
    return cfg.with_kernels_for(jax.devices()) if "auto" in (cfg.kernels, cfg.fused_attention) else cfg


@functools.lru_cache(maxsize=16)
def _initializer(cfg: LlamaConfig, seq_len: int):
    model = LlamaForCausalLM(cfg)
    return jax.jit(lambda rng: model.init(rng, jnp.zeros((1, seq_len), jnp.int32)))


def init_params(cfg: LlamaConfig, rng: Any, seq_len: int = 8) -> dict:
    """Random params (unboxed plain arrays) for `cfg`.

    Initialised by one compiled program per config: run op by op, flax's init dispatches and compiles
    about a hundred small programs, which took longer than the model's first training step."""
    return nn.meta.unbox(_initializer(cfg, seq_len)(rng)["params"])


@functools.lru_cache(maxsize=16)
def abstract_params(cfg: LlamaConfig, seq_len: int = 8):
    """Boxed abstract params (shapes + logical axis names), no memory allocated; kept per config, since
    tracing the model's init takes a second and every Trainer asks."""
    model = LlamaForCausalLM(cfg)
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, seq_len), jnp.int32)))
    return variables["params"]


@functools.partial(jax.jit, static_argnums=0)
def forward(cfg: LlamaConfig, params, input_ids, attention_mask=None):
    """Jitted logits for a batch (no cache)."""
    logits, _ = LlamaForCausalLM(cfg).apply({"params": params}, input_ids, attention_mask)
    return logits
