"""The fine-tuning recipe: its hyperparameters (`config.train`; the paper's by default), the warmup-cosine
learning rate and the clipped AdamW optimizer. Pure: nothing here touches a device."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from llm2llm_jax.common.sections import build
from llm2llm_jax.common.seeds import stable_seed

EPOCH_SELECTIONS = ("fixed", "dev_loss")


@dataclasses.dataclass(frozen=True)
class TrainHParams:
    """The fine-tuning recipe, built from `config.train` (these defaults are the config's defaults).

    The paper's: full fine-tuning, 3 epochs, lr 2e-5, cosine, 3% warmup, weight decay 0, batch 128.
    """

    learning_rate: float = 2e-5
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    epochs: int = 3  # with epoch_selection='dev_loss', the most epochs a fine-tune runs
    # 'fixed': every fine-tune runs `epochs` epochs (the paper's). 'dev_loss': the loss on the run's dev split
    # is measured after each epoch and the best epoch's weights are the fine-tune's result; it stops once
    # `patience` epochs in a row have not improved on the best (0: it runs all `epochs`).
    epoch_selection: str = "fixed"
    patience: int = 2
    batch_size: int = 128  # examples per optimizer step (global)
    micro_batch_size: int = 0  # examples per accumulation micro-step; 0 = batch_size (no accumulation)
    max_grad_norm: float = 1.0
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-8
    seq_multiple: int = 32  # pad lengths up to a multiple of this (few distinct jit shapes)
    # At most this many batch widths in one fine-tune, each a compiled program, chosen from the training
    # examples' lengths to pad least (student/batching.py `batch_shapes`); 0: every batch padded to its own.
    row_widths: int = 4
    share_prefix: bool = True  # read the tokens every example begins with once per step, not once per row
    prefix_multiple: int = 4  # that shared prefix, rounded down to a multiple of this many tokens
    target_multiple: int = 8  # pad per-row target counts up to a multiple of this
    max_length: int = 1024  # from config.data.max_length
    seed: int = 0  # batch order; from config.train.shuffle_seed (or derived from config.seed)

    @property
    def accum_steps(self) -> int:
        micro = self.micro_batch_size or self.batch_size
        if self.batch_size % micro:
            raise ValueError(f"batch_size={self.batch_size} must be a multiple of micro_batch_size={micro}")
        return self.batch_size // micro


def warmup_steps(hp: TrainHParams, total_steps: int) -> int:
    return max(1, int(round(hp.warmup_ratio * total_steps))) if hp.warmup_ratio > 0 else 0


def learning_rate_schedule(hp: TrainHParams, total_steps: int) -> optax.Schedule:
    """Linear warmup from 0 to the peak over warmup_ratio of the steps, then cosine decay to 0 at the last."""
    warmup = warmup_steps(hp, total_steps)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0 if warmup else hp.learning_rate,
        peak_value=hp.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=0.0,
    )


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    """optax.clip_by_global_norm's clipping (gradients whose global norm exceeds max_norm scaled down to it),
    written as a multiply by min(1, max_norm / norm) instead of a select between the gradient and its scaled
    copy: XLA:CPU fuses a multiply into AdamW's one pass over each weight, but writes a select's result out
    first and reads it back for each moment (and so it does a division, which is why optax's own formula
    cannot stay). The same gradients when none is clipped; within a rounding when they are."""

    def clip(updates, params=None):
        del params
        scale = jnp.minimum(1.0, max_norm / optax.tree.norm(updates))
        return jax.tree.map(lambda g: g * scale.astype(g.dtype), updates)

    return optax.stateless(clip)


def make_optimizer(hp: TrainHParams) -> optax.GradientTransformation:
    """Clip by global norm, then AdamW (the paper's recipe) at a unit learning rate: `train_step` multiplies
    its updates by the step's rate from `learning_rate_schedule`, evaluated on the host. The schedule depends
    on the fine-tune's length, and a rate passed in keeps it out of the compiled step, so that one compilation
    serves every iteration's fine-tune (and the persistent cache serves later runs)."""
    return optax.chain(
        clip_by_global_norm(hp.max_grad_norm) if hp.max_grad_norm > 0 else optax.identity(),
        optax.adamw(1.0, b1=hp.adam_b1, b2=hp.adam_b2, eps=hp.adam_eps, weight_decay=hp.weight_decay),
    )


def at_learning_rate(updates, learning_rate):
    """AdamW's updates at a unit rate (its direction, negated) times this step's rate: the same numbers as
    optax scaling by the negated rate itself, since negation is exact."""
    return jax.tree.map(lambda u: u * jnp.asarray(learning_rate, u.dtype), updates)


def hparams_from_config(config) -> TrainHParams:
    """The recipe of a run's config: `config.train`, with the data's max_length, and the batch-order seed
    (train.shuffle_seed, or derived from config.seed: the same every iteration, so that iterations differ
    only in their data)."""
    t = config.train
    seed = t.shuffle_seed if t.shuffle_seed >= 0 else stable_seed(config.seed, "train")
    return build(TrainHParams, t, max_length=config.data.max_length, seed=seed)
