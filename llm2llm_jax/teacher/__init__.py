"""Teachers: prompts and parsing, filters, an on-disk cache, and the gemini / openai / local backends."""

from llm2llm_jax.teacher.backends import (BudgetExceeded, TeacherError, make_backend)
from llm2llm_jax.teacher.filters import AugmentationFilter
from llm2llm_jax.teacher.prompts import build_messages, parse_examples

__all__ = ["AugmentationFilter", "BudgetExceeded", "TeacherError", "build_messages", "make_backend", "parse_examples"]
