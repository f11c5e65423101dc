"""The model: one Flax decoder for every supported family, its kernels, LoRA, weight and tokenizer IO."""

from llm2llm_jax.model.config import LlamaConfig
from llm2llm_jax.model.llama import LlamaForCausalLM, init_cache

__all__ = ["LlamaConfig", "LlamaForCausalLM", "init_cache"]
