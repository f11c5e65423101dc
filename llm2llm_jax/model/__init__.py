"""The Flax Llama student: config, modules and weight import/export."""

from llm2llm_jax.model.config import LlamaConfig
from llm2llm_jax.model.llama import LlamaForCausalLM, init_cache

__all__ = ["LlamaConfig", "LlamaForCausalLM", "init_cache"]
