"""llm2llm_jax: LLM2LLM iterative data augmentation with a Flax Llama student on a JAX device mesh."""

__version__ = "0.1.0"

import os as _os

# transformers is used for tokenizers only (the models are Flax); without torch it would print an
# advisory "PyTorch was not found" line on every run.
_os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
