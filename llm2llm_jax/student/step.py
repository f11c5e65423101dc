"""The fine-tune's pure numerics: the target-token loss (the LM head at target positions only), gradient
accumulation over micro-batches, one optimizer step, and the choice of epoch by dev loss.

The batch layout these read is described in student/train.py, whose `Trainer` jits them on the mesh.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

from llm2llm_jax.model.config import LlamaConfig
from llm2llm_jax.model.llama import LlamaForCausalLM, shared_prefix_cache
from llm2llm_jax.model.lora import combine
from llm2llm_jax.student.recipe import at_learning_rate


def target_nll(logits, target_ids, target_mask):
    """(sum of NLL of target_ids under logits where target_mask is 1, count); logits [B, K, V].

    Written as logsumexp - <logits, one_hot(target)> rather than a gather: the backward pass is then
    one fused elementwise op instead of a scatter into the [tokens, vocab] gradient.
    """
    weights = target_mask.astype(jnp.float32)
    logits = logits.astype(jnp.float32)
    picked = jnp.sum(logits * jax.nn.one_hot(target_ids, logits.shape[-1], dtype=logits.dtype), axis=-1)
    nll = jax.nn.logsumexp(logits, axis=-1) - picked
    return jnp.sum(nll * weights), jnp.sum(weights)


def token_loss(
    params: dict, cfg: LlamaConfig, input_ids, attention_mask, target_positions, target_mask, prefix_ids=None
):
    """(sum of next-token cross-entropy over target tokens, number of target tokens).

    prefix_ids [P] (P > 0): tokens before every row (target positions count from the row's first token): the
    prefix runs once into a KV cache, which is copied to every row; its gradient is the sum of the rows'."""
    cache = None
    if prefix_ids is not None and prefix_ids.shape[0]:
        slots = prefix_ids.shape[0] + input_ids.shape[1]
        cache = shared_prefix_cache(cfg, params, prefix_ids, input_ids.shape[0], slots)
    logits, _ = LlamaForCausalLM(cfg).apply(
        {"params": params},
        input_ids,
        attention_mask,
        cache=cache,
        logit_positions=target_positions,
        right_padded=True,  # `collate` puts each row's tokens first
    )
    next_pos = jnp.minimum(target_positions + 1, input_ids.shape[1] - 1)  # padded entries point at 0
    return target_nll(logits, jnp.take_along_axis(input_ids, next_pos, axis=1), target_mask)


def micro_batch_loss(params: dict, cfg: LlamaConfig, mb: dict, prefix_ids) -> tuple:
    """`token_loss` of one micro-batch of a collated batch: (sum of target-token losses, target tokens)."""
    return token_loss(
        params,
        cfg,
        mb["input_ids"],
        mb["attention_mask"],
        mb["target_positions"],
        mb["target_mask"],
        prefix_ids,
    )


def loss_and_grads(trainable: dict, frozen: dict, cfg: LlamaConfig, batch: dict):
    """Mean target-token loss and its gradient over all micro-batches (accumulated with lax.scan)."""

    batch = dict(batch)
    prefix_ids = batch.pop("prefix_ids", None)  # the same for every micro-batch

    def micro(carry, mb):
        grad_sum, loss_sum, count = carry

        def f(t):
            return micro_batch_loss(combine(t, frozen), cfg, mb, prefix_ids)

        (total, n), g = jax.value_and_grad(f, has_aux=True)(trainable)
        grad_sum = jax.tree.map(lambda a, b: a + b.astype(jnp.float32), grad_sum, g)
        return (grad_sum, loss_sum + total, count + n), None

    zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, jnp.float32), trainable)
    (grad_sum, loss_sum, count), _ = jax.lax.scan(micro, (zeros, jnp.float32(0), jnp.float32(0)), batch)
    denom = jnp.maximum(count, 1.0)
    grads = jax.tree.map(lambda g, p: (g / denom).astype(p.dtype), grad_sum, trainable)
    return loss_sum / denom, grads, count


def loss_sums(trainable: dict, frozen: dict, batch: dict, *, cfg: LlamaConfig):
    """(sum of target-token losses, number of target tokens) over a batch's micro-batches, without gradients:
    the dev loss."""
    batch = dict(batch)
    prefix_ids = batch.pop("prefix_ids", None)
    params = combine(trainable, frozen)

    def micro(carry, mb):
        total, n = micro_batch_loss(params, cfg, mb, prefix_ids)
        return (carry[0] + total, carry[1] + n), None

    (total, count), _ = jax.lax.scan(micro, (jnp.float32(0), jnp.float32(0)), batch)
    return total, count


def dev_losses(history: Sequence[dict]) -> list[float]:
    """The dev loss after each finished epoch, from a fine-tune's per-step metrics."""
    return [m["dev_loss"] for m in history if "dev_loss" in m]


def best_epoch(losses: Sequence[float]) -> int:
    """The epoch (0-based) with the least dev loss; the earlier on ties."""
    return min(range(len(losses)), key=lambda e: (losses[e], e))


def patience_spent(losses: Sequence[float], patience: int) -> bool:
    """Whether `patience` epochs in a row have passed without a dev loss below the best (0: never)."""
    return patience > 0 and bool(losses) and len(losses) - 1 - best_epoch(losses) >= patience


def train_step(state: dict, frozen: dict, batch: dict, learning_rate, *, cfg: LlamaConfig, optimizer):
    loss, grads, count = loss_and_grads(state["params"], frozen, cfg, batch)
    updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], at_learning_rate(updates, learning_rate))
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), "target_tokens": count}
    return {"step": state["step"] + 1, "params": params, "opt_state": opt_state}, metrics
