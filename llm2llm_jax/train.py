"""Fine-tuning: token-masked loss, AdamW + warmup-cosine, accumulation, LoRA, length bucketing, orbax.

Numerics are pure functions (`token_loss`, `train_step`); `Trainer` is the thin shell that owns the
mesh, the jitted step with its shardings, and the checkpoint manager.

A batch is a dict of int32 arrays shaped [accum_steps, micro_batch, ...]:
  input_ids, attention_mask [.., length] (1 = real token; right padding);
  target_positions, target_mask [.., K]: the positions whose next token is a target (prompt tokens
  are never targets), padded to K with mask 0. The LM head runs only at these positions: for
  instruction data most tokens are prompt, and the 49152-wide vocabulary projection is the largest
  matmul of a small model.
The loss is the sum of target-token cross-entropies divided by the number of target tokens in the
whole optimizer step, so accumulation and sharding do not change it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Iterator, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util
from jax.sharding import NamedSharding, PartitionSpec as P

from llm2llm_jax import parallel
from llm2llm_jax.model.config import LlamaConfig
from llm2llm_jax.model.llama import LlamaForCausalLM, abstract_params


@dataclasses.dataclass(frozen=True)
class TrainHParams:
    """Paper defaults: full fine-tuning, 3 epochs, lr 2e-5, cosine, 3% warmup, weight decay 0, batch 128."""

    learning_rate: float = 2e-5
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    epochs: int = 3
    batch_size: int = 128  # examples per optimizer step (global)
    micro_batch_size: int = 0  # examples per accumulation micro-step; 0 = batch_size (no accumulation)
    max_grad_norm: float = 1.0
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-8
    seq_multiple: int = 32  # pad lengths up to a multiple of this (few distinct jit shapes)
    target_multiple: int = 8  # pad per-row target counts up to a multiple of this
    max_length: int = 1024
    seed: int = 0

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
        init_value=0.0 if warmup else hp.learning_rate, peak_value=hp.learning_rate, warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1), end_value=0.0)


def make_optimizer(hp: TrainHParams, total_steps: int) -> optax.GradientTransformation:
    """Clip by global norm, then AdamW on `learning_rate_schedule` (the paper's recipe)."""
    return optax.chain(
        optax.clip_by_global_norm(hp.max_grad_norm) if hp.max_grad_norm > 0 else optax.identity(),
        optax.adamw(learning_rate_schedule(hp, total_steps), b1=hp.adam_b1, b2=hp.adam_b2, eps=hp.adam_eps,
                    weight_decay=hp.weight_decay),
    )


# ---------------------------------------------------------------------------- trainable / frozen split
def is_lora_path(path: tuple) -> bool:
    return path[-1] in ("lora_a", "lora_b")


def split_trainable(params: dict, cfg: LlamaConfig) -> tuple[dict, dict]:
    """(trainable, frozen): everything is trainable for full fine-tuning; only adapters with LoRA."""
    if not cfg.lora_rank:
        return params, {}
    flat = traverse_util.flatten_dict(params)
    trainable = {k: v for k, v in flat.items() if is_lora_path(k)}
    frozen = {k: v for k, v in flat.items() if not is_lora_path(k)}
    if not trainable:
        raise ValueError("lora_rank > 0 but the params hold no lora_a/lora_b; call add_lora_params first")
    return traverse_util.unflatten_dict(trainable), traverse_util.unflatten_dict(frozen)


def combine(trainable: dict, frozen: dict) -> dict:
    if not frozen:
        return trainable
    flat = traverse_util.flatten_dict(frozen)
    flat.update(traverse_util.flatten_dict(trainable))
    return traverse_util.unflatten_dict(flat)


def add_lora_params(params: dict, cfg: LlamaConfig, rng: jax.Array) -> dict:
    """Base params plus fresh adapters (lora_a ~ N(0, 1/rank), lora_b = 0: the model starts unchanged)."""
    if not cfg.lora_rank:
        return params
    flat = traverse_util.flatten_dict(params)
    shapes = traverse_util.flatten_dict(nn.meta.unbox(abstract_params(cfg)))
    lora_keys = sorted(k for k in shapes if is_lora_path(k))
    rngs = jax.random.split(rng, len(lora_keys))
    dtype = cfg.jnp_param_dtype
    for key, r in zip(lora_keys, rngs):
        shape = shapes[key].shape
        if key[-1] == "lora_a":
            flat[key] = np.asarray(jax.random.normal(r, shape, jnp.float32) / cfg.lora_rank).astype(dtype)
        else:
            flat[key] = np.zeros(shape, dtype)
    return traverse_util.unflatten_dict(flat)


def merge_lora(params: dict, cfg: LlamaConfig) -> tuple[dict, LlamaConfig]:
    """Fold adapters into the kernels (W + A @ B * alpha / rank) and drop them: plain Llama params."""
    if not cfg.lora_rank:
        return params, cfg
    flat = traverse_util.flatten_dict(params)
    out = {k: v for k, v in flat.items() if not is_lora_path(k)}
    scale = cfg.lora_alpha / cfg.lora_rank
    for key in flat:
        if key[-1] == "lora_a":
            module = key[:-1]
            a = np.asarray(flat[key], np.float32)
            b = np.asarray(flat[module + ("lora_b",)], np.float32)
            kernel = np.asarray(flat[module + ("kernel",)])
            delta = np.matmul(a, b) * scale  # stacked [L, in, r] @ [L, r, out] works too
            out[module + ("kernel",)] = (kernel.astype(np.float32) + delta).astype(kernel.dtype)
    return traverse_util.unflatten_dict(out), cfg.replace(lora_rank=0)


# ---------------------------------------------------------------------------- pure numerics
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


def token_loss(params: dict, cfg: LlamaConfig, input_ids, attention_mask, target_positions, target_mask):
    """(sum of next-token cross-entropy over target tokens, number of target tokens)."""
    logits, _ = LlamaForCausalLM(cfg).apply({"params": params}, input_ids, attention_mask,
                                            logit_positions=target_positions)
    next_pos = jnp.minimum(target_positions + 1, input_ids.shape[1] - 1)  # padded entries point at 0
    return target_nll(logits, jnp.take_along_axis(input_ids, next_pos, axis=1), target_mask)


def loss_and_grads(trainable: dict, frozen: dict, cfg: LlamaConfig, batch: dict):
    """Mean target-token loss and its gradient over all micro-batches (accumulated with lax.scan)."""

    def micro(carry, mb):
        grad_sum, loss_sum, count = carry

        def f(t):
            total, n = token_loss(combine(t, frozen), cfg, mb["input_ids"], mb["attention_mask"],
                                  mb["target_positions"], mb["target_mask"])
            return total, n

        (total, n), g = jax.value_and_grad(f, has_aux=True)(trainable)
        grad_sum = jax.tree.map(lambda a, b: a + b.astype(jnp.float32), grad_sum, g)
        return (grad_sum, loss_sum + total, count + n), None

    zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, jnp.float32), trainable)
    (grad_sum, loss_sum, count), _ = jax.lax.scan(micro, (zeros, jnp.float32(0), jnp.float32(0)), batch)
    denom = jnp.maximum(count, 1.0)
    grads = jax.tree.map(lambda g, p: (g / denom).astype(p.dtype), grad_sum, trainable)
    return loss_sum / denom, grads, count


def train_step(state: dict, frozen: dict, batch: dict, *, cfg: LlamaConfig, optimizer):
    loss, grads, count = loss_and_grads(state["params"], frozen, cfg, batch)
    updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), "target_tokens": count}
    return {"step": state["step"] + 1, "params": params, "opt_state": opt_state}, metrics


# ---------------------------------------------------------------------------- batching
@dataclasses.dataclass
class Example:
    """One tokenized training example: the prompt tokens are masked out of the loss."""

    prompt_ids: Sequence[int]
    target_ids: Sequence[int]


def make_batches(examples: Sequence[Example], hp: TrainHParams, rng: np.random.Generator, pad_id: int = 0,
                 shuffle: bool = True, bucket_batches: int = 32) -> Iterator[dict]:
    """One epoch of fixed-shape batches [accum, micro, T].

    Length bucketing keeps padding low: examples are shuffled, cut into groups of `bucket_batches`
    batches, sorted by length inside each group, and each batch is padded only to its own longest
    example (rounded up to hp.seq_multiple). A short last batch is filled with all-masked rows.
    """
    order = rng.permutation(len(examples)) if shuffle else np.arange(len(examples))
    group = hp.batch_size * bucket_batches
    batches: list = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start:start + group],
                       key=lambda i: len(examples[i].prompt_ids) + len(examples[i].target_ids))
        batches += [chunk[i:i + hp.batch_size] for i in range(0, len(chunk), hp.batch_size)]
    if shuffle:
        rng.shuffle(batches)
    for idx in batches:
        yield collate([examples[i] for i in idx], hp, pad_id)


def collate(rows: Sequence[Example], hp: TrainHParams, pad_id: int = 0) -> dict:
    """Right-pad rows into [accum, micro, T] token arrays and [accum, micro, K] target positions.

    T rounds the longest row up to hp.seq_multiple and K the most targets in a row up to
    hp.target_multiple, so that few distinct shapes are compiled.
    """
    longest = max(min(len(r.prompt_ids) + len(r.target_ids), hp.max_length) for r in rows)
    width = min(-(-longest // hp.seq_multiple) * hp.seq_multiple, max(hp.max_length, hp.seq_multiple))
    n = hp.batch_size
    ids = np.full((n, width), pad_id, np.int32)
    attn = np.zeros((n, width), np.int32)
    predicting = []  # per row: positions whose next token is a target
    for i, r in enumerate(rows):
        seq = (list(r.prompt_ids) + list(r.target_ids))[:width]
        ids[i, :len(seq)] = seq
        attn[i, :len(seq)] = 1
        predicting.append(range(max(len(r.prompt_ids), 1) - 1, len(seq) - 1))
    most = max([len(p) for p in predicting] + [1])
    k = min(-(-most // hp.target_multiple) * hp.target_multiple, width)
    positions = np.zeros((n, k), np.int32)
    mask = np.zeros((n, k), np.int32)
    for i, p in enumerate(predicting):
        positions[i, :len(p)] = list(p)
        mask[i, :len(p)] = 1
    rows_shape = (hp.accum_steps, n // hp.accum_steps)
    return {"input_ids": ids.reshape(rows_shape + (width,)), "attention_mask": attn.reshape(rows_shape + (width,)),
            "target_positions": positions.reshape(rows_shape + (k,)), "target_mask": mask.reshape(rows_shape + (k,))}


def padding_fraction(batches: Iterable[dict]) -> float:
    real = total = 0
    for b in batches:
        real += int(b["attention_mask"].sum())
        total += b["attention_mask"].size
    return 1.0 - real / max(total, 1)


# ---------------------------------------------------------------------------- the stateful shell
class Trainer:
    """Owns the mesh, the sharded jitted step, and the (optional) orbax checkpoint manager.

    Fine-tuning always starts from the base params handed to `init_state`; nothing is carried over
    between Trainer instances.
    """

    def __init__(self, cfg: LlamaConfig, hp: TrainHParams, mesh, total_steps: int,
                 checkpoint_dir: Optional[str] = None, keep_checkpoints: int = 2):
        cfg = cfg.with_kernels_for(mesh.devices.flat)  # 'auto' picks the kernels of this mesh's devices
        self.cfg, self.hp, self.mesh, self.total_steps = cfg, hp, mesh, total_steps
        self.optimizer = make_optimizer(hp, total_steps)
        boxed = abstract_params(cfg)
        full_shardings = parallel.param_shardings(boxed, mesh)
        self.param_shardings = full_shardings
        t_sh, f_sh = split_trainable(full_shardings, cfg) if cfg.lora_rank else (full_shardings, {})
        self.trainable_shardings, self.frozen_shardings = t_sh, f_sh
        self.batch_sharding = NamedSharding(mesh, P(None, parallel.BATCH_AXES, None))
        self.frozen = None
        self.state = None
        self._step_fn = None
        self.checkpoints = None
        if checkpoint_dir:
            import orbax.checkpoint as ocp

            self.checkpoints = ocp.CheckpointManager(
                checkpoint_dir, options=ocp.CheckpointManagerOptions(max_to_keep=keep_checkpoints,
                                                                     enable_async_checkpointing=True))

    # -- setup
    def _rules(self):
        return nn.logical_axis_rules(parallel.LOGICAL_RULES)

    def init_state(self, params: dict) -> None:
        """Place base params (plus adapters, if LoRA) on the mesh and build a fresh optimizer state."""
        trainable, frozen = split_trainable(params, self.cfg)
        self.frozen = parallel.place(frozen, self.frozen_shardings) if frozen else {}
        trainable = parallel.place(trainable, self.trainable_shardings)
        self.state_shardings = self._state_shardings(trainable)
        self.state = jax.jit(self._fresh_state, out_shardings=self.state_shardings)(trainable)
        self._build_step()

    def _fresh_state(self, trainable):
        return {"step": jnp.int32(0), "params": trainable, "opt_state": self.optimizer.init(trainable)}

    def _state_shardings(self, trainable):
        """Optimizer moments are sharded exactly like the params they track; scalars are replicated.

        Left to XLA's propagation, the zeros of a fresh Adam state come out replicated, which would
        put the full f32 moments of a 7B model on every chip.
        """
        shapes = jax.eval_shape(self._fresh_state, trainable)
        params_def = jax.tree.structure(shapes["params"])
        repl = parallel.replicated(self.mesh)
        return jax.tree.map(lambda node: self.trainable_shardings if jax.tree.structure(node) == params_def else repl,
                            shapes, is_leaf=lambda node: jax.tree.structure(node) == params_def)

    def abstract_state(self):
        """Shapes, dtypes and shardings of the train state without allocating it (for AOT compilation)."""
        boxed = abstract_params(self.cfg)
        trainable, _ = split_trainable(nn.meta.unbox(boxed), self.cfg)
        trainable = _with_shardings(trainable, self.trainable_shardings)
        self.state_shardings = self._state_shardings(trainable)
        shapes = jax.eval_shape(self._fresh_state, trainable)
        self._build_step()
        return _with_shardings(shapes, self.state_shardings)

    def lower_step(self, abstract_state, batch_shape: tuple, targets_per_row: int):
        """Lower (not run) the train step for [accum, micro, length] batches with `targets_per_row`
        target positions per row; `.compile()` it for memory."""
        boxed = nn.meta.unbox(abstract_params(self.cfg))
        _, frozen = split_trainable(boxed, self.cfg)
        frozen = _with_shardings(frozen, self.frozen_shardings) if frozen else {}
        target_shape = batch_shape[:2] + (targets_per_row,)
        batch = {k: jax.ShapeDtypeStruct(target_shape if k.startswith("target") else batch_shape, jnp.int32,
                                         sharding=self.batch_sharding)
                 for k in ("input_ids", "attention_mask", "target_positions", "target_mask")}
        with jax.set_mesh(self.mesh), self._rules():
            return self._step_fn.lower(abstract_state, frozen, batch)

    def _build_step(self):
        import functools

        step = functools.partial(train_step, cfg=self.cfg, optimizer=self.optimizer)
        repl = parallel.replicated(self.mesh)
        self._step_fn = jax.jit(
            step,
            in_shardings=(self.state_shardings, self.frozen_shardings, self.batch_sharding),
            out_shardings=(self.state_shardings, repl),
            donate_argnums=(0,))

    def place_batch(self, batch: dict) -> dict:
        divisor = parallel.batch_divisor(self.mesh)
        if batch["input_ids"].shape[1] % divisor:
            raise ValueError(f"micro-batch of {batch['input_ids'].shape[1]} rows does not divide over the "
                             f"{divisor} data-parallel devices; choose batch sizes that are multiples of it")
        return {k: parallel.place(v, self.batch_sharding) for k, v in batch.items()}

    # -- running
    def step(self, batch: dict) -> dict:
        with jax.set_mesh(self.mesh), self._rules():
            self.state, metrics = self._step_fn(self.state, self.frozen, self.place_batch(batch))
        return metrics

    def params(self) -> dict:
        """Full params (base + trained adapters, or the trained full params), still on the mesh."""
        return combine(self.state["params"], self.frozen)

    def fit(self, examples: Sequence[Example], pad_id: int = 0, progress: bool = True, desc: str = "training",
            start_step: int = 0, checkpoint_every: int = 0) -> list[dict]:
        """Run hp.epochs epochs over `examples`; returns per-step metrics (host floats).

        start_step: resume after a restored checkpoint; the batch order is a pure function of hp.seed,
        so the first `start_step` batches are regenerated and skipped. checkpoint_every: save (async)
        every this many steps.
        """
        from tqdm.auto import tqdm

        rng = np.random.default_rng(self.hp.seed)
        history = []
        bar = tqdm(total=self.total_steps, initial=start_step, desc=desc, disable=not progress, unit="step")
        step = 0
        for epoch in range(self.hp.epochs):
            for batch in make_batches(examples, self.hp, rng, pad_id=pad_id):
                step += 1
                if step <= start_step:
                    continue
                metrics = {k: float(v) for k, v in jax.device_get(self.step(batch)).items()}
                metrics["epoch"] = epoch
                history.append(metrics)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}")
                bar.update(1)
                if checkpoint_every and step % checkpoint_every == 0 and self.checkpoints is not None:
                    self.save()
        bar.close()
        return history

    # -- checkpoints
    def save(self, wait: bool = False) -> None:
        import orbax.checkpoint as ocp

        step = int(jax.device_get(self.state["step"]))
        if step != self.checkpoints.latest_step():
            self.checkpoints.save(step, args=ocp.args.StandardSave(self.state))
        if wait:
            self.checkpoints.wait_until_finished()

    def restore(self, step: Optional[int] = None) -> int:
        """Restore the latest (or given) step onto this Trainer's mesh; needs init_state first for shapes."""
        import orbax.checkpoint as ocp

        step = self.checkpoints.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.checkpoints.directory}")
        target = _with_shardings(self.state, self.state_shardings)
        self.state = self.checkpoints.restore(step, args=ocp.args.StandardRestore(target))
        return step

    def close(self) -> None:
        if self.checkpoints is not None:
            self.checkpoints.wait_until_finished()
            self.checkpoints.close()


def _with_shardings(tree: Any, shardings: Any) -> Any:
    """Abstract arrays (shape, dtype) carrying the given shardings: targets for AOT lowering and restore."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    return max(1, math.ceil(num_examples / batch_size))


def host_params(tree: Any) -> Any:
    """Device arrays to host numpy (fully replicated gather)."""
    return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)
