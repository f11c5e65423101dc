"""llm2llm_jax: LLM2LLM iterative data augmentation with a Flax Llama student on a JAX device mesh."""

__version__ = "0.1.0"
