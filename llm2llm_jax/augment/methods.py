"""The augmentation methods by `config.method` name: a new method is one module and one line here."""

from __future__ import annotations

from llm2llm_jax.augment.auggpt import AugGpt
from llm2llm_jax.augment.base import Augmenter
from llm2llm_jax.augment.eda import Eda
from llm2llm_jax.augment.finetune import Finetune
from llm2llm_jax.augment.llm2llm import Llm2llm
from llm2llm_jax.augment.pool import Pool

METHODS: dict[str, type[Augmenter]] = {
    "finetune": Finetune,
    "llm2llm": Llm2llm,
    "auggpt": AugGpt,
    "eda": Eda,
    "pool": Pool,
}
