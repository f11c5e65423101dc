"""The model families one decoder runs (Llama, Mistral, Qwen2, Qwen3, Gemma 3): what each switches in the
shared decoder, what its config.json leaves out, how it lays out sliding-window layers, and how its files name
it.

Every switch names what it changes, so the decoder (model/llama.py), the config reader (model/config.py) and
the weight IO (model/weights.py) ask for a behaviour, never for a family.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

FULL, SLIDING = "full_attention", "sliding_attention"


def _windows_from_max_window_layers(d: dict, layers: int) -> list | None:
    """Sliding layers from `max_window_layers` on, when `use_sliding_window` says so (Qwen2's convention)."""
    if not d.get("use_sliding_window"):
        return None
    first = d.get("max_window_layers", layers)
    return [SLIDING if i >= first else FULL for i in range(layers)]


def _windows_everywhere(d: dict, layers: int) -> list | None:
    """A window on every layer (Mistral)."""
    return [SLIDING] * layers


def _windows_with_global_layers(every: int) -> Callable[[dict, int], list | None]:
    """Every `every`-th layer global, the others sliding, unless config.json gives its own pattern (Gemma
    3)."""

    def pattern(d: dict, layers: int) -> list | None:
        n = d.get("sliding_window_pattern") or d.get("_sliding_window_pattern") or every
        return [FULL if (i + 1) % n == 0 else SLIDING for i in range(layers)]

    return pattern


def _no_hf_fields(cfg, d: dict) -> None:
    pass


def _mistral_hf_fields(cfg, d: dict) -> None:
    d["sliding_window"] = cfg.sliding_window if any(cfg.sliding_layers) else None


def _qwen_hf_fields(cfg, d: dict) -> None:
    sliding = any(cfg.sliding_layers)
    d.update(
        use_sliding_window=sliding,
        sliding_window=cfg.sliding_window if sliding else None,
        max_window_layers=cfg.sliding_layers.index(True) if sliding else cfg.num_hidden_layers,
        layer_types=list(cfg.layer_types or (FULL,) * cfg.num_hidden_layers),
    )


def _qwen2_hf_fields(cfg, d: dict) -> None:
    _qwen_hf_fields(cfg, d)
    del d["attention_bias"], d["mlp_bias"]  # Qwen2's config has neither: its q, k, v biases are implied


def _gemma3_hf_fields(cfg, d: dict) -> None:
    """Gemma 3's config.json: RoPE per layer type, its own activation key and no soft-capping."""
    del d["hidden_act"], d["rope_theta"], d["rope_scaling"], d["mlp_bias"]
    full = {"rope_type": "default", "rope_theta": cfg.rope_theta, **cfg.rope_scaling_dict}
    d.update(
        hidden_activation="gelu_pytorch_tanh",
        layer_types=list(cfg.layer_types or (FULL,) * cfg.num_hidden_layers),
        sliding_window=cfg.sliding_window or 4096,
        query_pre_attn_scalar=int(cfg.query_pre_attn_scalar or cfg.head_dim),
        rope_parameters={
            "full_attention": full,
            "sliding_attention": {
                "rope_type": "default",
                "rope_theta": cfg.rope_local_theta or cfg.rope_theta,
            },
        },
        final_logit_softcapping=None,
        attn_logit_softcapping=None,
    )


@dataclasses.dataclass(frozen=True)
class Family:
    """What one model family changes in the shared decoder and how its files name it."""

    name: str
    hf_model_types: tuple  # config.json `model_type` values read as this family
    hf_architecture: str  # written to an exported config.json
    gguf_arch: str  # GGUF `general.architecture`
    attention_bias: bool = False  # biases on the q, k and v projections (Qwen2)
    qk_norm: bool = False  # RMSNorm over each head's queries and keys before RoPE (Qwen3, Gemma 3)
    norm_plus_one: bool = False  # RMSNorm scales by (1 + weight) in f32, weights starting at 0 (Gemma)
    sandwich_norms: bool = False  # a norm after attention and after the MLP too, and a pre-MLP norm (Gemma)
    scaled_embeddings: bool = False  # embeddings times sqrt(hidden_size) (Gemma)
    activation: str = "silu"  # the gated MLP's: silu, or gelu_tanh (Gemma)
    local_rope_base: bool = False  # sliding layers rotate with a RoPE base of their own (Gemma 3)
    query_scale_field: bool = False  # the softmax scale comes from `query_pre_attn_scalar` (Gemma 3)
    global_layer_every: int = 0  # GGUF without a pattern: one global layer in this many (Gemma 3: 6)
    # What config.json leaves out: RoPE base, tied embeddings.
    default_rope_theta: float = 10000.0
    default_tied_embeddings: bool = False
    # config.json's sliding layers when it lists no `layer_types`; and whether they need `use_sliding_window`.
    sliding_layout: Callable[[dict, int], list | None] = _windows_from_max_window_layers
    sliding_needs_flag: bool = False
    hf_fields: Callable = _no_hf_fields  # the family's own fields of an exported config.json
    gguf_permuted_qk: bool = False  # llama.cpp interleaves q/k rows for its llama arch only

    @property
    def hf_activations(self) -> tuple:
        """config.json's names for `activation`, the one it defaults to first."""
        return {"silu": ("silu",), "gelu_tanh": ("gelu_pytorch_tanh", "gelu_tanh")}[self.activation]


FAMILIES = {
    f.name: f
    for f in (
        Family("llama", ("llama",), "LlamaForCausalLM", "llama", gguf_permuted_qk=True),
        Family(
            "mistral",
            ("mistral",),
            "MistralForCausalLM",
            "llama",
            gguf_permuted_qk=True,
            sliding_layout=_windows_everywhere,
            hf_fields=_mistral_hf_fields,
        ),
        Family(
            "qwen2",
            ("qwen2",),
            "Qwen2ForCausalLM",
            "qwen2",
            attention_bias=True,
            sliding_needs_flag=True,
            hf_fields=_qwen2_hf_fields,
        ),
        Family(
            "qwen3",
            ("qwen3",),
            "Qwen3ForCausalLM",
            "qwen3",
            qk_norm=True,
            sliding_needs_flag=True,
            hf_fields=_qwen_hf_fields,
        ),
        Family(
            "gemma3",
            ("gemma3_text", "gemma3"),
            "Gemma3ForCausalLM",
            "gemma3",
            qk_norm=True,
            norm_plus_one=True,
            sandwich_norms=True,
            scaled_embeddings=True,
            activation="gelu_tanh",
            local_rope_base=True,
            query_scale_field=True,
            global_layer_every=6,
            default_rope_theta=1_000_000.0,
            default_tied_embeddings=True,
            sliding_layout=_windows_with_global_layers(6),
            hf_fields=_gemma3_hf_fields,
        ),
    )
}
FAMILY_BY_MODEL_TYPE = {t: f.name for f in FAMILIES.values() for t in f.hf_model_types}
SUPPORTED_ARCHITECTURES = ", ".join(f.hf_architecture for f in FAMILIES.values())
# A GGUF architecture shared by two families (llama.cpp writes Mistral as llama) reads as the first listed.
FAMILY_BY_GGUF_ARCH: dict = {}
for _family in FAMILIES.values():
    FAMILY_BY_GGUF_ARCH.setdefault(_family.gguf_arch, _family.name)
