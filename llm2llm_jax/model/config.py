"""LlamaConfig: the architecture numbers and runtime options, read from HF config.json or GGUF metadata."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, Optional

import jax.numpy as jnp

from llm2llm_jax.errors import UserError
from llm2llm_jax.model import kernels as kernels_lib

# HF `model_type` values whose checkpoints are plain Llama (same tensors, same maths).
LLAMA_MODEL_TYPES = ("llama",)
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")
REMAT_POLICIES = ("none", "full", "dots", "dots_with_no_batch_dims")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


class ConfigError(UserError, ValueError):
    """A model config that cannot describe a Llama this package can run."""


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    """Architecture plus how to run it. Frozen, so it can be a static jit argument."""

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int = 32
    head_dim: Optional[int] = None  # None: hidden_size // num_attention_heads
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    # Stored as sorted (key, value) pairs so the config stays hashable; see `rope_scaling_dict`.
    rope_scaling: Optional[tuple] = None
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = False
    bos_token_id: Optional[int] = 1
    eos_token_id: Any = 2  # int or tuple of ints
    pad_token_id: Optional[int] = None
    # Runtime options (not part of the checkpoint).
    dtype: str = "float32"  # compute dtype
    param_dtype: str = "float32"
    scan_layers: bool = True
    remat_policy: str = "none"
    # Hardware-specific implementations (model/kernels.py): "auto" (cpu on CPU devices, xla elsewhere),
    # "xla" or "cpu"; see `with_kernels_for`. fused_attention: "off", or "xla" / "cudnn" to run training
    # and scoring attention through jax.nn.dot_product_attention with that implementation.
    kernels: str = "auto"
    fused_attention: str = "off"
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
            targets = self.lora_targets.split(",") if isinstance(self.lora_targets, str) else self.lora_targets
            object.__setattr__(self, "lora_targets", tuple(t.strip() for t in targets if t.strip()))
        if isinstance(self.eos_token_id, list):
            object.__setattr__(self, "eos_token_id", tuple(self.eos_token_id))
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self, source: str = "LlamaConfig") -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "num_key_value_heads", "head_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{source}: field '{name}' must be a positive integer, got {value!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"{source}: num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads} (GQA needs whole groups)")
        if self.head_dim % 2:
            raise ConfigError(f"{source}: head_dim={self.head_dim} must be even for RoPE")
        rope_type = self.rope_scaling_dict.get("rope_type", "default")
        if rope_type not in SUPPORTED_ROPE_TYPES:
            raise ConfigError(f"{source}: rope_scaling type '{rope_type}' is not supported; "
                              f"supported: {', '.join(SUPPORTED_ROPE_TYPES)}")
        if self.dtype not in DTYPES or self.param_dtype not in DTYPES:
            raise ConfigError(f"{source}: dtype/param_dtype must be one of {sorted(DTYPES)}, "
                              f"got {self.dtype!r}/{self.param_dtype!r}")
        if not isinstance(self.lora_rank, int) or self.lora_rank < 0:
            raise ConfigError(f"{source}: lora_rank must be an integer >= 0, got {self.lora_rank!r}")
        unknown = set(self.lora_targets) - set(LORA_TARGETS)
        if unknown:
            raise ConfigError(f"{source}: lora_targets has unknown projection(s) {sorted(unknown)}; "
                              f"choose from {LORA_TARGETS}")
        if self.kernels not in kernels_lib.KERNEL_SETS:
            raise ConfigError(f"{source}: kernels (config key model.kernels) must be one of "
                              f"{kernels_lib.KERNEL_SETS}, got {self.kernels!r}")
        if self.fused_attention not in kernels_lib.FUSED_ATTENTION:
            raise ConfigError(f"{source}: fused_attention (config key model.fused_attention) must be one of "
                              f"{kernels_lib.FUSED_ATTENTION}, got {self.fused_attention!r}")
        if self.fused_attention == "cudnn" and self.dtype == "float32":
            raise ConfigError(f"{source}: model.fused_attention='cudnn' needs a bfloat16 or float16 compute dtype, "
                              f"got model.dtype='float32'; set model.dtype=bfloat16 or model.fused_attention=xla")
        if self.remat_policy not in REMAT_POLICIES:
            raise ConfigError(f"{source}: remat_policy must be one of {REMAT_POLICIES}, got {self.remat_policy!r}")

    # ------------------------------------------------------------------ views
    @property
    def rope_scaling_dict(self) -> dict:
        return dict(self.rope_scaling or ())

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

    def replace(self, **changes) -> "LlamaConfig":
        return dataclasses.replace(self, **changes)

    def with_kernels_for(self, devices) -> "LlamaConfig":
        """This config with `kernels` resolved for the devices the model runs on (a mesh's devices):
        'auto' becomes 'cpu' on CPUs and 'xla' elsewhere. Raises `ConfigError` for a choice those
        devices cannot run."""
        try:
            name = kernels_lib.resolve(self.kernels, list(devices), self.fused_attention)
        except kernels_lib.KernelError as e:
            raise ConfigError(str(e)) from None
        return self.replace(kernels=name)

    def num_params(self) -> int:
        """Parameter count (tied embeddings counted once)."""
        h, i, v = self.hidden_size, self.intermediate_size, self.vocab_size
        q = self.num_attention_heads * self.head_dim
        kv = self.num_key_value_heads * self.head_dim
        per_layer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h
        return v * h * (1 if self.tie_word_embeddings else 2) + self.num_hidden_layers * per_layer + h

    # ------------------------------------------------------------------ HF
    @classmethod
    def from_hf_dict(cls, d: Mapping[str, Any], source: str = "config.json", **runtime) -> "LlamaConfig":
        model_type = d.get("model_type")
        archs = d.get("architectures") or []
        if model_type not in LLAMA_MODEL_TYPES:
            raise ConfigError(
                f"{source}: field 'model_type' is {model_type!r} (architectures {archs}); only Llama-family "
                f"checkpoints (model_type 'llama', LlamaForCausalLM) are supported")
        for flag in ("attention_bias", "mlp_bias"):
            if d.get(flag):
                raise ConfigError(f"{source}: field '{flag}' is true; biased Llama variants are not supported")
        act = d.get("hidden_act", "silu")
        if act != "silu":
            raise ConfigError(f"{source}: field 'hidden_act' is {act!r}; Llama uses 'silu'")
        required = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
        missing = [k for k in required if k not in d]
        if missing:
            raise ConfigError(f"{source}: missing required field(s) {missing}")
        # transformers 5 nests theta and scaling under `rope_parameters`; older files keep
        # `rope_theta` and `rope_scaling` at top level.
        rope_params = dict(d.get("rope_parameters") or {})
        rope_theta = rope_params.pop("rope_theta", d.get("rope_theta", 10000.0))
        scaling = dict(d.get("rope_scaling") or rope_params or {})
        if "type" in scaling and "rope_type" not in scaling:
            scaling["rope_type"] = scaling.pop("type")
        scaling.pop("rope_theta", None)
        if scaling.get("rope_type", "default") == "default":
            scaling = {}
        cfg = cls(
            vocab_size=d["vocab_size"],
            hidden_size=d["hidden_size"],
            intermediate_size=d["intermediate_size"],
            num_hidden_layers=d["num_hidden_layers"],
            num_attention_heads=d["num_attention_heads"],
            num_key_value_heads=d.get("num_key_value_heads") or d["num_attention_heads"],
            head_dim=d.get("head_dim"),
            rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
            rope_theta=float(rope_theta),
            rope_scaling=tuple(sorted(scaling.items())) or None,
            max_position_embeddings=d.get("max_position_embeddings", 4096),
            tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
            bos_token_id=d.get("bos_token_id"),
            eos_token_id=d.get("eos_token_id"),
            pad_token_id=d.get("pad_token_id"),
            **runtime,
        )
        cfg.validate(source)
        return cfg

    @classmethod
    def from_hf_file(cls, path: str, **runtime) -> "LlamaConfig":
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{path}: not found; an HF model directory needs a config.json") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
        return cls.from_hf_dict(d, source=path, **runtime)

    def to_hf_dict(self) -> dict:
        d = {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
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
            "attention_bias": False,
            "mlp_bias": False,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": list(self.eos_token_id) if isinstance(self.eos_token_id, tuple) else self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "torch_dtype": self.param_dtype,
        }
        return d

    # ------------------------------------------------------------------ GGUF
    @classmethod
    def from_gguf_metadata(cls, meta: Mapping[str, Any], source: str, vocab_size: Optional[int] = None,
                           tied: bool = False, **runtime) -> "LlamaConfig":
        arch = meta.get("general.architecture")
        if arch != "llama":
            raise ConfigError(f"{source}: metadata 'general.architecture' is {arch!r}; only 'llama' GGUF files "
                              f"are supported")

        def need(key):
            if key not in meta:
                raise ConfigError(f"{source}: GGUF metadata lacks '{key}'")
            return meta[key]

        heads = int(need("llama.attention.head_count"))
        hidden = int(need("llama.embedding_length"))
        head_dim = int(meta.get("llama.rope.dimension_count", hidden // heads))
        scaling = {}
        if meta.get("llama.rope.scaling.type") == "linear":
            scaling = {"rope_type": "linear", "factor": float(meta["llama.rope.scaling.factor"])}
        cfg = cls(
            vocab_size=int(meta.get("llama.vocab_size", vocab_size or 0)),
            hidden_size=hidden,
            intermediate_size=int(need("llama.feed_forward_length")),
            num_hidden_layers=int(need("llama.block_count")),
            num_attention_heads=heads,
            num_key_value_heads=int(meta.get("llama.attention.head_count_kv", heads)),
            head_dim=head_dim,
            rms_norm_eps=float(meta.get("llama.attention.layer_norm_rms_epsilon", 1e-5)),
            rope_theta=float(meta.get("llama.rope.freq_base", 10000.0)),
            rope_scaling=tuple(sorted(scaling.items())) or None,
            max_position_embeddings=int(meta.get("llama.context_length", 2048)),
            tie_word_embeddings=tied,
            bos_token_id=meta.get("tokenizer.ggml.bos_token_id"),
            eos_token_id=meta.get("tokenizer.ggml.eos_token_id"),
            pad_token_id=meta.get("tokenizer.ggml.padding_token_id"),
            **runtime,
        )
        cfg.validate(source)
        return cfg


def tiny_config(**overrides) -> LlamaConfig:
    """A small random-init config for tests and examples."""
    base = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                bos_token_id=1, eos_token_id=2, pad_token_id=0)
    base.update(overrides)
    return LlamaConfig(**base)
