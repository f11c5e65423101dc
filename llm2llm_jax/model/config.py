"""LlamaConfig: the architecture numbers, the model family (model/families.py) and the runtime options, read
from HF config.json or GGUF metadata and written back to config.json."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from llm2llm_jax.common.errors import ConfigError
from llm2llm_jax.model import hardware
from llm2llm_jax.model.families import (
    FAMILIES,
    FAMILY_BY_GGUF_ARCH,
    FAMILY_BY_MODEL_TYPE,
    FULL,
    SLIDING,
    SUPPORTED_ARCHITECTURES,
    Family,
)

LAYER_TYPES = (FULL, SLIDING)
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")
REMAT_POLICIES = ("none", "full", "dots", "dots_with_no_batch_dims")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    """Architecture plus how to run it. Frozen, so it can be a static jit argument."""

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int = 32
    head_dim: int | None = None  # None: hidden_size // num_attention_heads
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    # Stored as sorted (key, value) pairs so the config stays hashable; see `rope_scaling_dict`.
    rope_scaling: tuple | None = None
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = False
    # Family switches (FAMILIES) and the attention pattern: per layer `full_attention` or
    # `sliding_attention` (None: every layer full); a sliding layer's query sees the `sliding_window`
    # latest positions, itself included, and uses RoPE base `rope_local_theta` (None: rope_theta, unscaled).
    family: str = "llama"
    sliding_window: int | None = None
    layer_types: tuple | None = None
    rope_local_theta: float | None = None
    query_pre_attn_scalar: float | None = None  # softmax scale 1/sqrt(this); None: head_dim
    bos_token_id: int | None = 1
    eos_token_id: Any = 2  # int or tuple of ints
    pad_token_id: int | None = None
    # Runtime options (not part of the checkpoint).
    dtype: str = "float32"  # compute dtype
    param_dtype: str = "float32"
    scan_layers: bool = True
    remat_policy: str = "none"
    # Hardware-specific implementations (model/kernels.py): "auto" (cpu on CPU devices, xla elsewhere),
    # "xla" or "cpu"; see `with_kernels_for`. fused_attention, the training and scoring attention of the
    # xla set: "auto" (chosen per device kind: `hardware.resolve_attention`), "off" (einsums), "xla" /
    # "cudnn" (jax.nn.dot_product_attention with that implementation) or "blocked" (causal query blocks).
    kernels: str = "auto"
    fused_attention: str = "auto"
    # LoRA: rank 0 is full fine-tuning; otherwise low-rank adapters on the named projections.
    lora_rank: int = 0
    lora_alpha: float = 16.0
    lora_targets: tuple = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

    def __post_init__(self):
        if self.head_dim is None:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
        if isinstance(self.rope_scaling, Mapping):
            object.__setattr__(self, "rope_scaling", tuple(sorted(self.rope_scaling.items())))
        if isinstance(self.lora_targets, (list, str)):
            targets = (
                self.lora_targets.split(",") if isinstance(self.lora_targets, str) else self.lora_targets
            )
            object.__setattr__(self, "lora_targets", tuple(t.strip() for t in targets if t.strip()))
        if isinstance(self.layer_types, list):
            object.__setattr__(self, "layer_types", tuple(self.layer_types))
        if isinstance(self.eos_token_id, list):
            object.__setattr__(self, "eos_token_id", tuple(self.eos_token_id))
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self, source: str = "LlamaConfig") -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"{source}: family {self.family!r} is not one of {sorted(FAMILIES)}")
        if self.layer_types is not None:
            if len(self.layer_types) != self.num_hidden_layers or set(self.layer_types) - set(LAYER_TYPES):
                raise ConfigError(
                    f"{source}: layer_types must name one of {LAYER_TYPES} for each of the "
                    f"{self.num_hidden_layers} layers, got {list(self.layer_types)}"
                )
            if "sliding_attention" in self.layer_types and not (
                isinstance(self.sliding_window, int) and self.sliding_window > 0
            ):
                raise ConfigError(
                    f"{source}: sliding_attention layers need a positive integer sliding_window, "
                    f"got {self.sliding_window!r}"
                )
        for name in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{source}: field '{name}' must be a positive integer, got {value!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"{source}: num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads} (GQA needs whole groups)"
            )
        if self.head_dim % 2:
            raise ConfigError(f"{source}: head_dim={self.head_dim} must be even for RoPE")
        rope_type = self.rope_scaling_dict.get("rope_type", "default")
        if rope_type not in SUPPORTED_ROPE_TYPES:
            raise ConfigError(
                f"{source}: rope_scaling type '{rope_type}' is not supported; "
                f"supported: {', '.join(SUPPORTED_ROPE_TYPES)}"
            )
        if self.dtype not in DTYPES or self.param_dtype not in DTYPES:
            raise ConfigError(
                f"{source}: dtype/param_dtype must be one of {sorted(DTYPES)}, "
                f"got {self.dtype!r}/{self.param_dtype!r}"
            )
        if not isinstance(self.lora_rank, int) or self.lora_rank < 0:
            raise ConfigError(f"{source}: lora_rank must be an integer >= 0, got {self.lora_rank!r}")
        unknown = set(self.lora_targets) - set(LORA_TARGETS)
        if unknown:
            raise ConfigError(
                f"{source}: lora_targets has unknown projection(s) {sorted(unknown)}; "
                f"choose from {LORA_TARGETS}"
            )
        if self.kernels not in hardware.KERNEL_SETS:
            raise ConfigError(
                f"{source}: kernels (config key model.kernels) must be one of "
                f"{hardware.KERNEL_SETS}, got {self.kernels!r}"
            )
        if self.fused_attention not in hardware.FUSED_ATTENTION:
            raise ConfigError(
                f"{source}: fused_attention (config key model.fused_attention) must be one of "
                f"{hardware.FUSED_ATTENTION}, got {self.fused_attention!r}"
            )
        if self.fused_attention == "cudnn" and self.dtype == "float32":
            raise ConfigError(
                f"{source}: model.fused_attention='cudnn' needs a bfloat16 or float16 compute dtype, "
                f"got model.dtype='float32'; set model.dtype=bfloat16 or model.fused_attention=xla"
            )
        if self.remat_policy not in REMAT_POLICIES:
            raise ConfigError(
                f"{source}: remat_policy must be one of {REMAT_POLICIES}, got {self.remat_policy!r}"
            )

    # ------------------------------------------------------------------ views
    @property
    def rope_scaling_dict(self) -> dict:
        return dict(self.rope_scaling or ())

    @property
    def traits(self) -> Family:
        return FAMILIES[self.family]

    @property
    def sliding_layers(self) -> tuple:
        """Per layer: does it attend over the sliding window only?"""
        return tuple(
            t == "sliding_attention"
            for t in (self.layer_types or ("full_attention",) * self.num_hidden_layers)
        )

    @property
    def jnp_dtype(self):
        return DTYPES[self.dtype]

    @property
    def jnp_param_dtype(self):
        return DTYPES[self.param_dtype]

    @property
    def eos_token_ids(self) -> tuple:
        if self.eos_token_id is None:
            return ()
        if isinstance(self.eos_token_id, int):
            return (self.eos_token_id,)
        return tuple(self.eos_token_id)

    def replace(self, **changes) -> LlamaConfig:
        return dataclasses.replace(self, **changes)

    def with_kernels_for(self, devices) -> LlamaConfig:
        """This config with `kernels` and `fused_attention` resolved for the devices the model runs on (a
        mesh's devices): kernels 'auto' becomes 'cpu' on CPUs and 'xla' elsewhere, and the attention is
        chosen per device kind (`hardware.resolve_attention`). Raises `ConfigError` for a choice those
        devices cannot run."""
        devices = list(devices)
        try:
            name = hardware.resolve_kernels(self.kernels, devices, self.fused_attention)
        except hardware.KernelError as e:
            raise ConfigError(str(e)) from None
        # A scanned stack with full and sliding layers picks each layer's window inside the scan.
        windows_static = not (self.scan_layers and len(set(self.sliding_layers)) > 1)
        attention = hardware.resolve_attention(
            self.fused_attention, name, devices, self.dtype, self.head_dim, windows_static
        )
        return self.replace(kernels=name, fused_attention=attention)

    def num_params(self) -> int:
        """Parameter count (tied embeddings counted once)."""
        h, i, v = self.hidden_size, self.intermediate_size, self.vocab_size
        q = self.num_attention_heads * self.head_dim
        kv = self.num_key_value_heads * self.head_dim
        per_layer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h
        per_layer += (q + 2 * kv) * self.traits.attention_bias + 2 * self.head_dim * self.traits.qk_norm
        per_layer += 2 * h * self.traits.sandwich_norms
        return v * h * (1 if self.tie_word_embeddings else 2) + self.num_hidden_layers * per_layer + h

    # ------------------------------------------------------------------ HF
    @classmethod
    def from_hf_dict(cls, d: Mapping[str, Any], source: str = "config.json", **runtime) -> LlamaConfig:
        model_type = d.get("model_type")
        archs = d.get("architectures") or []
        if model_type not in FAMILY_BY_MODEL_TYPE:
            raise ConfigError(
                f"{source}: field 'model_type' is {model_type!r} (architectures {archs}); supported: "
                f"{SUPPORTED_ARCHITECTURES} (model_type {', '.join(sorted(FAMILY_BY_MODEL_TYPE))})"
            )
        family = FAMILIES[FAMILY_BY_MODEL_TYPE[model_type]]
        if (
            model_type == "gemma3"
        ):  # the multimodal checkpoint: its language model is described in text_config
            d = dict(
                d.get("text_config") or {},
                model_type="gemma3_text",
                tie_word_embeddings=d.get("tie_word_embeddings", True),
            )
        if d.get("attention_bias") and not family.attention_bias:
            raise ConfigError(
                f"{source}: field 'attention_bias' is true; {family.name} checkpoints with biased "
                f"attention are not supported"
            )
        if d.get("mlp_bias"):
            raise ConfigError(f"{source}: field 'mlp_bias' is true; biased MLPs are not supported")
        for flag in ("final_logit_softcapping", "attn_logit_softcapping"):
            if d.get(flag) is not None:
                raise ConfigError(
                    f"{source}: field '{flag}' is {d[flag]!r}; soft-capped logits (Gemma 2) are not supported"
                )
        expected_act = family.hf_activations
        act = d.get("hidden_activation") or d.get("hidden_act") or expected_act[0]
        if act not in expected_act:
            raise ConfigError(
                f"{source}: field 'hidden_act' is {act!r}; {family.name} uses '{expected_act[0]}'"
            )
        required = (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
        )
        missing = [k for k in required if k not in d]
        if missing:
            raise ConfigError(f"{source}: missing required field(s) {missing}")
        layers = d["num_hidden_layers"]
        default_theta = family.default_rope_theta
        # transformers 5 nests theta and scaling under `rope_parameters` (per layer type for Gemma 3);
        # older files keep `rope_theta`, `rope_scaling` and `rope_local_base_freq` at top level.
        rope_params = dict(d.get("rope_parameters") or {})
        local_rope = dict(rope_params.pop("sliding_attention", None) or {})
        rope_params = dict(rope_params.pop("full_attention", None) or rope_params)
        rope_theta = rope_params.pop("rope_theta", d.get("rope_theta", default_theta))
        scaling = dict(d.get("rope_scaling") or rope_params or {})
        if "type" in scaling and "rope_type" not in scaling:
            scaling["rope_type"] = scaling.pop("type")
        scaling.pop("rope_theta", None)
        if scaling.get("rope_type", "default") == "default":
            scaling = {}
        if local_rope.get("rope_type", "default") != "default":
            raise ConfigError(
                f"{source}: rope_parameters.sliding_attention has rope_type "
                f"{local_rope['rope_type']!r}; only unscaled RoPE on sliding layers is supported"
            )
        window = d.get("sliding_window")
        layer_types = d.get("layer_types")
        if layer_types is None and window:
            layer_types = family.sliding_layout(d, layers)
        if family.sliding_needs_flag and not d.get("use_sliding_window", False):
            layer_types = None
        if layer_types is not None and all(t == FULL for t in layer_types):
            layer_types = None
        rope_local_theta = None
        if family.local_rope_base:
            rope_local_theta = float(local_rope.get("rope_theta", d.get("rope_local_base_freq", 10000.0)))
        cfg = cls(
            vocab_size=d["vocab_size"],
            hidden_size=d["hidden_size"],
            intermediate_size=d["intermediate_size"],
            num_hidden_layers=layers,
            num_attention_heads=d["num_attention_heads"],
            num_key_value_heads=d.get("num_key_value_heads") or d["num_attention_heads"],
            head_dim=d.get("head_dim"),
            rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
            rope_theta=float(rope_theta),
            rope_scaling=tuple(sorted(scaling.items())) or None,
            max_position_embeddings=d.get("max_position_embeddings", 4096),
            tie_word_embeddings=bool(d.get("tie_word_embeddings", family.default_tied_embeddings)),
            family=family.name,
            sliding_window=window if layer_types is not None else None,
            layer_types=tuple(layer_types) if layer_types is not None else None,
            rope_local_theta=rope_local_theta,
            query_pre_attn_scalar=float(d["query_pre_attn_scalar"])
            if family.query_scale_field and d.get("query_pre_attn_scalar")
            else None,
            bos_token_id=d.get("bos_token_id"),
            eos_token_id=d.get("eos_token_id"),
            pad_token_id=d.get("pad_token_id"),
            **runtime,
        )
        cfg.validate(source)
        return cfg

    @classmethod
    def from_hf_file(cls, path: str, **runtime) -> LlamaConfig:
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{path}: not found; an HF model directory needs a config.json") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
        return cls.from_hf_dict(d, source=path, **runtime)

    def to_hf_dict(self) -> dict:
        fam = self.traits
        d = {
            "architectures": [fam.hf_architecture],
            "model_type": fam.hf_model_types[0],
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": self.rope_scaling_dict or None,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_bias": fam.attention_bias,
            "mlp_bias": False,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": list(self.eos_token_id)
            if isinstance(self.eos_token_id, tuple)
            else self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "torch_dtype": self.param_dtype,
        }
        fam.hf_fields(self, d)
        return d

    # ------------------------------------------------------------------ GGUF
    @classmethod
    def from_gguf_metadata(
        cls,
        meta: Mapping[str, Any],
        source: str,
        vocab_size: int | None = None,
        tied: bool = False,
        **runtime,
    ) -> LlamaConfig:
        arch = meta.get("general.architecture")
        if arch not in FAMILY_BY_GGUF_ARCH:
            raise ConfigError(
                f"{source}: metadata 'general.architecture' is {arch!r}; supported GGUF "
                f"architectures: {', '.join(FAMILY_BY_GGUF_ARCH)}"
            )
        family = FAMILIES[FAMILY_BY_GGUF_ARCH[arch]]

        def need(key):
            if f"{arch}.{key}" not in meta:
                raise ConfigError(f"{source}: GGUF metadata lacks '{arch}.{key}'")
            return meta[f"{arch}.{key}"]

        def get(key, default=None):
            return meta.get(f"{arch}.{key}", default)

        heads = int(need("attention.head_count"))
        hidden = int(need("embedding_length"))
        layers = int(need("block_count"))
        head_dim = int(get("attention.key_length", get("rope.dimension_count", hidden // heads)))
        scaling = {}
        if get("rope.scaling.type") == "linear":
            scaling = {"rope_type": "linear", "factor": float(get("rope.scaling.factor"))}
        window = get("attention.sliding_window")
        layer_types, local_theta, query_scalar = None, None, None
        if family.global_layer_every and window:
            # llama.cpp's default for what Gemma 3 GGUFs leave out: one global layer in six
            pattern = int(get("attention.sliding_window_pattern", family.global_layer_every))
            layer_types = tuple(FULL if (i + 1) % pattern == 0 else SLIDING for i in range(layers))
        if family.local_rope_base:  # llama.cpp's default: RoPE base 10000 on the local layers
            local_theta = float(get("rope.freq_base_swa", 10000.0))
        if family.query_scale_field:  # queries scaled by head_dim (by hidden / heads for the 62-layer 27B)
            query_scalar = float(hidden // heads if layers == 62 else head_dim)
        cfg = cls(
            vocab_size=int(get("vocab_size", vocab_size or 0)),
            hidden_size=hidden,
            intermediate_size=int(need("feed_forward_length")),
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=int(get("attention.head_count_kv", heads)),
            head_dim=head_dim,
            rms_norm_eps=float(get("attention.layer_norm_rms_epsilon", 1e-5)),
            rope_theta=float(get("rope.freq_base", 10000.0)),
            rope_scaling=tuple(sorted(scaling.items())) or None,
            max_position_embeddings=int(get("context_length", 2048)),
            tie_word_embeddings=tied,
            family=family.name,
            sliding_window=int(window) if layer_types else None,
            layer_types=layer_types,
            rope_local_theta=local_theta,
            query_pre_attn_scalar=query_scalar,
            bos_token_id=meta.get("tokenizer.ggml.bos_token_id"),
            eos_token_id=meta.get("tokenizer.ggml.eos_token_id"),
            pad_token_id=meta.get("tokenizer.ggml.padding_token_id"),
            **runtime,
        )
        cfg.validate(source)
        return cfg


def tiny_config(**overrides) -> LlamaConfig:
    """A small random-init config for tests and examples."""
    base = dict(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    base.update(overrides)
    return LlamaConfig(**base)
