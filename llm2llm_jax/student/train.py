"""Fine-tuning on the mesh: the jitted step, its shardings and checkpoints, and one whole fine-tune.

Numerics are pure functions (student/step.py: `token_loss`, `train_step`); `Trainer` is the thin shell
that owns the mesh, the jitted step with its shardings, and the orbax checkpoint manager. The recipe
(hyperparameters, schedule, optimizer) is student/recipe.py's; the batches are student/batching.py's.

A batch is a dict of int32 arrays shaped [accum_steps, micro_batch, ...]:
  input_ids, attention_mask [.., length] (1 = real token; right padding);
  target_positions, target_mask [.., K]: the positions whose next token is a target (prompt tokens
  are never targets), padded to K with mask 0. The LM head runs only at these positions: for
  instruction data most tokens are prompt, and the 49152-wide vocabulary projection is the largest
  matmul of a small model;
  and prefix_ids [P] (P may be 0): tokens that begin every row, left out of input_ids. With
  hp.share_prefix the tokens every training example begins with (the task's instruction, about half of
  a short example) are read once per step, through the KV cache that decoding uses, instead of once per row;
  the rows attend to them as they would to their own first tokens, so the loss is the same function.
The loss is the sum of target-token cross-entropies divided by the number of target tokens in the
whole optimizer step, so accumulation and sharding do not change it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from llm2llm_jax.common import compilations, parallel, stopping
from llm2llm_jax.common.console import progress_bar
from llm2llm_jax.common.disk_faults import reporting_disk_faults
from llm2llm_jax.model.config import LlamaConfig
from llm2llm_jax.model.llama import abstract_params
from llm2llm_jax.model.lora import add_lora_params, combine, split_trainable
from llm2llm_jax.student import arrays_on_disk, flops
from llm2llm_jax.student.batching import (
    Example,
    batch_purpose,
    batch_shapes,
    make_batches,
    split_shared_prefix,
    step_shape,
    tokenize_examples,
)
from llm2llm_jax.student.checkpoint_policy import CheckpointPolicy
from llm2llm_jax.student.recipe import TrainHParams, learning_rate_schedule, make_optimizer
from llm2llm_jax.student.step import best_epoch, dev_losses, loss_sums, patience_spent, train_step

# Steps whose metrics are fetched together: fetching waits for the step, so the host fetches rarely and stays
# ahead of the devices (a step's upload and dispatch overlap the one running).
FETCH_EVERY = 16


# ---------------------------------------------------------------------------- the stateful shell
BATCH_ROW_KEYS = ("input_ids", "attention_mask", "target_positions", "target_mask")
_STEP_FNS: dict = {}  # jitted train steps by (model, mesh, optimizer settings): see Trainer._build_step


class Trainer:
    """Owns the mesh, the sharded jitted step, and the (optional) orbax checkpoint manager.

    Fine-tuning starts from the params handed to `init_state`; nothing is carried over
    between Trainer instances.
    """

    def __init__(
        self,
        cfg: LlamaConfig,
        hp: TrainHParams,
        mesh,
        total_steps: int,
        checkpoint_dir: str | None = None,
        keep_checkpoints: int = 2,
    ):
        cfg = cfg.with_kernels_for(mesh.devices.flat)  # 'auto' picks the kernels of this mesh's devices
        self.cfg, self.hp, self.mesh, self.total_steps = cfg, hp, mesh, total_steps
        self.optimizer = make_optimizer(hp)
        # Every step's rate, evaluated once before training (as the step evaluated it, so the numbers are the
        # same): no device op and no wait for its result between two steps.
        schedule = learning_rate_schedule(hp, total_steps)
        self.rates = [np.float32(schedule(jnp.int32(s))) for s in range(total_steps + 1)]
        self.steps_done = 0  # optimizer steps the state has taken: the schedule's count for the next step
        boxed = abstract_params(cfg)
        full_shardings = parallel.param_shardings(boxed, mesh)
        self.param_shardings = full_shardings
        t_sh, f_sh = split_trainable(full_shardings, cfg) if cfg.lora_rank else (full_shardings, {})
        self.trainable_shardings, self.frozen_shardings = t_sh, f_sh
        rows = NamedSharding(mesh, P(None, parallel.BATCH_AXES, None))
        self.batch_sharding = dict.fromkeys(BATCH_ROW_KEYS, rows) | {"prefix_ids": parallel.replicated(mesh)}
        self.frozen = None
        self.state = None
        self.history: list[dict] = []  # per-step metrics since step 0, saved with each checkpoint
        self.flops = 0.0  # of the steps this process ran (llm2llm_jax/student/flops.py)
        # With dev-loss epoch selection: the trainable params after the best epoch so far, checkpointed
        # with the state; they, not the last step's, are the trained model.
        self.kept = None
        self._step_fn = None
        self._loss_fn = None
        self.checkpoints = None
        if checkpoint_dir:
            self.checkpoints = arrays_on_disk.manager(
                checkpoint_dir,
                ("state", "kept"),
                ("history",),
                max_to_keep=keep_checkpoints,
                enable_async_checkpointing=True,
            )

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
        self.steps_done = 0
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
        return jax.tree.map(
            lambda node: self.trainable_shardings if jax.tree.structure(node) == params_def else repl,
            shapes,
            is_leaf=lambda node: jax.tree.structure(node) == params_def,
        )

    def abstract_state(self):
        """Shapes, dtypes and shardings of the train state without allocating it (for AOT compilation)."""
        boxed = abstract_params(self.cfg)
        trainable, _ = split_trainable(nn.meta.unbox(boxed), self.cfg)
        trainable = _with_shardings(trainable, self.trainable_shardings)
        self.state_shardings = self._state_shardings(trainable)
        shapes = jax.eval_shape(self._fresh_state, trainable)
        self._build_step()
        return _with_shardings(shapes, self.state_shardings)

    def lower_step(
        self, abstract_state, batch_shape: tuple, targets_per_row: int, prefix_length: int = 0, frozen=None
    ):
        """Lower (not run) the train step for [accum, micro, length] batches with `targets_per_row`
        target positions per row and a shared prefix of `prefix_length` tokens; `.compile()` it. `frozen`:
        the frozen params' shapes (default: the model's)."""
        if frozen is None:
            boxed = nn.meta.unbox(abstract_params(self.cfg))
            _, frozen = split_trainable(boxed, self.cfg)
            frozen = _with_shardings(frozen, self.frozen_shardings) if frozen else {}
        target_shape = batch_shape[:2] + (targets_per_row,)
        batch = {
            k: jax.ShapeDtypeStruct(
                target_shape if k.startswith("target") else batch_shape,
                jnp.int32,
                sharding=self.batch_sharding[k],
            )
            for k in BATCH_ROW_KEYS
        }
        batch["prefix_ids"] = jax.ShapeDtypeStruct(
            (prefix_length,), jnp.int32, sharding=self.batch_sharding["prefix_ids"]
        )
        with jax.set_mesh(self.mesh), self._rules():
            return self._step_fn.lower(abstract_state, frozen, batch, jax.ShapeDtypeStruct((), jnp.float32))

    def _build_step(self):
        """The jitted step for this model, optimizer settings and mesh, shared by every Trainer that has them
        (each iteration's fine-tune builds a Trainer): traced and compiled once per batch shape."""
        hp = self.hp
        key = (self.cfg, self.mesh, hp.max_grad_norm, hp.adam_b1, hp.adam_b2, hp.adam_eps, hp.weight_decay)
        self._step_key = key
        if key not in _STEP_FNS:
            step = functools.partial(train_step, cfg=self.cfg, optimizer=self.optimizer)
            repl = parallel.replicated(self.mesh)
            _STEP_FNS[key] = jax.jit(
                step,
                in_shardings=(self.state_shardings, self.frozen_shardings, self.batch_sharding, repl),
                out_shardings=(self.state_shardings, repl),
                donate_argnums=(0,),
            )
        self._step_fn = _STEP_FNS[key]

    def place_batch(self, batch: dict) -> dict:
        """The batch on the mesh, rows split over the data-parallel axes, the shared prefix (none when the
        batch has no `prefix_ids`) on every device."""
        batch = dict(batch)
        batch.setdefault("prefix_ids", np.zeros((0,), np.int32))
        divisor = parallel.batch_divisor(self.mesh)
        if batch["input_ids"].shape[1] % divisor:
            raise ValueError(
                f"micro-batch of {batch['input_ids'].shape[1]} rows does not divide over the "
                f"{divisor} data-parallel devices; choose batch sizes that are multiples of it"
            )
        return {k: parallel.place(v, self.batch_sharding[k]) for k, v in batch.items()}

    def compile_ahead(self, shapes, prefix_length: int) -> None:
        """Start compiling the step for each (width, targets) batch shape in the background, each once per
        process: a fine-tune whose shapes are fixed (`batch_shapes`) compiles them side by side before its
        first step instead of one at the first batch of each. `step` runs such a batch on its program."""
        state, frozen = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), (self.state, self.frozen)
        )
        micro = self.hp.batch_size // self.hp.accum_steps
        for width, targets in shapes:
            shape = ((self.hp.accum_steps, micro, width), targets, prefix_length)
            lower = functools.partial(self.lower_step, state, *shape, frozen)
            compilations.compile_ahead(
                (self._step_key, *shape), lambda lower=lower: lower().compile(), batch_purpose(*shape)
            )

    # -- running
    def step(self, batch: dict) -> dict:
        """One optimizer step at the schedule's rate for the steps taken so far (a host batch, or one
        placed); returns its metrics on the device, not yet fetched."""
        learning_rate = self.rates[min(self.steps_done, self.total_steps)]
        batch = self.place_batch(batch)
        shape = step_shape(batch)
        step_fn = compilations.compiled_ahead((self._step_key, *shape)) or self._step_fn
        with jax.set_mesh(self.mesh), self._rules(), compilations.compiled_for(batch_purpose(*shape)):
            self.state, metrics = step_fn(self.state, self.frozen, batch, learning_rate)
        self.steps_done += 1
        return metrics

    def params(self) -> dict:
        """Full params (base + trained adapters, or the trained full params), still on the mesh: the best
        epoch's when epochs are selected by dev loss."""
        return combine(self.state["params"] if self.kept is None else self.kept, self.frozen)

    def dev_loss(self, examples: Sequence[Example], pad_id: int) -> float:
        """The mean target-token loss of the current params on `examples` (the dev split, tokenized like the
        training set)."""
        if self._loss_fn is None:
            self._loss_fn = jax.jit(functools.partial(loss_sums, cfg=self.cfg))
        prefix, rows = (
            split_shared_prefix(examples, self.hp.prefix_multiple) if self.hp.share_prefix else ((), examples)
        )
        total, count = 0.0, 0.0
        shapes = batch_shapes(rows, self.hp)
        batches = make_batches(
            rows, self.hp, np.random.default_rng(0), pad_id=pad_id, shuffle=False, shapes=shapes
        )
        for batch in batches:
            batch["prefix_ids"] = np.asarray(prefix, np.int32)
            with jax.set_mesh(self.mesh), self._rules():
                s, n = jax.device_get(
                    self._loss_fn(self.state["params"], self.frozen, self.place_batch(batch))
                )
            total, count = total + float(s), count + float(n)
        return total / max(count, 1.0)

    def _epoch_done(self, examples: Sequence[Example], pad_id: int) -> bool:
        """Measure the dev loss after an epoch (recorded with its last step), keep the params if they are the
        best so far; whether patience is spent."""
        self.history[-1]["dev_loss"] = self.dev_loss(examples, pad_id)
        losses = dev_losses(self.history)
        if best_epoch(losses) == len(losses) - 1:
            self.kept = jax.tree.map(jnp.copy, self.state["params"])  # the next step donates the state
        return patience_spent(losses, self.hp.patience)

    def fit(
        self,
        examples: Sequence[Example],
        pad_id: int = 0,
        progress: bool = True,
        desc: str = "training",
        start_step: int = 0,
        checkpoint_every: int = 0,
        on_step=None,
        dev_examples: Sequence[Example] | None = None,
        checkpoint_minutes: float = 0.0,
    ) -> list[dict]:
        """Run hp.epochs epochs over `examples`; returns this call's per-step metrics (host floats), which
        `self.history` holds after the steps restored with a checkpoint.

        start_step: resume after a restored checkpoint; the batch order is a pure function of hp.seed,
        so the first `start_step` batches are regenerated and skipped. checkpoint_every: save (async)
        every this many steps, once checkpoint_minutes have passed since the fit began or its last save
        (student/checkpoint_policy.py). on_step(step, metrics): called after each step (TensorBoard).
        dev_examples: select the epoch by the loss on these (hp.epoch_selection='dev_loss'): measured after
        each epoch, the best epoch's params kept, training stopped once hp.patience epochs bring no better.
        """
        rng = np.random.default_rng(self.hp.seed)
        prefix, examples = (
            split_shared_prefix(examples, self.hp.prefix_multiple) if self.hp.share_prefix else ((), examples)
        )
        prefix_ids = np.asarray(prefix, np.int32)
        shapes = batch_shapes(examples, self.hp)
        if shapes:
            self.compile_ahead(shapes, len(prefix))
        first = len(self.history)  # steps restored with a checkpoint come before this call's
        bar = progress_bar(self.total_steps, desc, progress, unit="step", initial=start_step)
        per_epoch = steps_per_epoch(len(examples), self.hp.batch_size)
        policy = CheckpointPolicy(checkpoint_every, checkpoint_minutes)
        pending = []  # (step, epoch, metrics on the device): fetched in groups, a fetch waits for its step

        def fetch():
            if not pending:
                return
            for (step, epoch, _), values in zip(pending, jax.device_get([m for *_, m in pending])):
                metrics = {k: float(v) for k, v in values.items()} | {"epoch": epoch}
                self.history.append(metrics)
                if on_step is not None:
                    on_step(step, metrics)
            bar.set_postfix(loss=f"{self.history[-1]['loss']:.4f}")
            pending.clear()

        def numbered():
            step = 0
            for epoch in range(self.hp.epochs):
                for batch in make_batches(examples, self.hp, rng, pad_id=pad_id, shapes=shapes):
                    step += 1
                    if step > start_step:
                        yield step, epoch, batch | {"prefix_ids": prefix_ids}

        # A fine-tune resumed from the checkpoint it stopped at has nothing left to run.
        if dev_examples is None or not patience_spent(dev_losses(self.history), self.hp.patience):
            # A preempted machine's SIGTERM ends a fine-tune after a step, with a checkpoint of it: the step
            # it came in with one process; with several, one they agree on (`_stop_agreed`).
            noting = self.checkpoints is not None
            with stopping.sigterm_noted(when=noting) as terminated:
                for step, epoch, batch in placed_ahead(numbered(), self.place_batch):
                    pending.append((step, epoch, self.step(batch)))
                    self.flops += flops.train_step_flops(
                        self.cfg,
                        self.hp.batch_size,
                        batch["input_ids"].shape[-1],
                        batch["target_positions"].shape[-1],
                        prefix=len(prefix),
                    )
                    bar.update(1)
                    epoch_done = dev_examples is not None and step % per_epoch == 0
                    # Mid-training checkpoints only (preemption); the caller decides on the trained model's.
                    save = step < self.total_steps and self.checkpoints is not None and policy.due(step)
                    fetched = len(pending) >= FETCH_EVERY or epoch_done or save
                    if fetched:
                        fetch()
                    stop = epoch_done and self._epoch_done(dev_examples, pad_id)
                    if save:
                        self.save()
                        policy.saved()
                    if noting and self._stop_agreed(fetched, terminated):
                        self._stop_after(fetch)
                    if stop:
                        break
                if noting and jax.process_count() > 1 and parallel.any_process(terminated()):
                    self._stop_after(fetch)  # one came after the last agreed step
            fetch()
        bar.close()
        return self.history[first:]

    @staticmethod
    def _stop_agreed(fetched: bool, terminated) -> bool:
        """Whether a SIGTERM stops the fine-tune after this step: with one process, whether one came; with
        several, at a step where the loop fetched its metrics (the same steps on every process, at least
        every FETCH_EVERY, where it waited for the devices anyway), whether one came to any of them (a
        collective, so that all stop at the same step and save it together)."""
        if jax.process_count() == 1:
            return terminated()
        return fetched and parallel.any_process(terminated())

    def _stop_after(self, fetch) -> None:
        """Checkpoint the step a SIGTERM stopped the fine-tune at, then stop the run."""
        fetch()
        self.save(wait=True)
        raise stopping.Terminated()

    # -- checkpoints
    def save(self, wait: bool = False) -> None:
        import orbax.checkpoint as ocp

        step = int(jax.device_get(self.state["step"]))
        if step != self.checkpoints.latest_step():
            items = {
                "state": arrays_on_disk.save(self.state),
                "history": ocp.args.JsonSave(self.history[:step]),
            }
            if self.kept is not None:
                items["kept"] = arrays_on_disk.save(self.kept)
            self.checkpoints.save(step, args=ocp.args.Composite(**items))
        if wait:
            self.checkpoints.wait_until_finished()

    def restore(self, step: int | None = None) -> int:
        """Restore the latest (or given) step onto this Trainer's mesh; needs init_state first for shapes."""
        import orbax.checkpoint as ocp

        step = self.checkpoints.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.checkpoints.directory}")
        target = _with_shardings(self.state, self.state_shardings)
        restored = self.checkpoints.restore(
            step,
            args=ocp.args.Composite(state=arrays_on_disk.restore(target), history=ocp.args.JsonRestore()),
        )
        self.state, self.history = restored["state"], list(restored["history"])
        if dev_losses(self.history):  # epochs selected by dev loss: the best epoch's params were saved too
            kept = _with_shardings(self.state["params"], self.trainable_shardings)
            self.kept = self.checkpoints.restore(
                step, args=ocp.args.Composite(kept=arrays_on_disk.restore(kept))
            )["kept"]
        self.steps_done = step
        return step

    def close(self) -> None:
        if self.checkpoints is not None:
            self.checkpoints.wait_until_finished()
            self.checkpoints.close()


def _with_shardings(tree: Any, shardings: Any) -> Any:
    """Abstract arrays (shape, dtype) carrying the given shardings: targets for AOT lowering and restore."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def trained_shapes(cfg: LlamaConfig, mesh) -> dict:
    """Shapes, dtypes and shardings of the params a fine-tune on `mesh` returns (`finetune`), known before it
    runs: what compiles the programs that evaluate them ahead."""
    boxed = abstract_params(cfg)
    return _with_shardings(nn.meta.unbox(boxed), parallel.param_shardings(boxed, mesh))


def placed_ahead(items: Iterator[tuple], place) -> Iterator[tuple]:
    """(step, epoch, batch) items with each batch placed on the devices one item ahead: the next batch's
    upload is queued while the current step runs."""

    def placed(item):
        return None if item is None else (*item[:-1], place(item[-1]))

    upcoming = placed(next(items, None))
    while upcoming is not None:
        current, upcoming = upcoming, placed(next(items, None))
        yield current


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    return max(1, math.ceil(num_examples / batch_size))


def host_params(tree: Any) -> Any:
    """Device arrays to host numpy (fully replicated gather)."""
    return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)


def trained_params(cfg: LlamaConfig, hp: TrainHParams, mesh, checkpoint_dir: str, template: dict) -> dict:
    """The params of the latest checkpoint in `checkpoint_dir` (a trained model), on the mesh; `template`:
    params of the same structure (base + fresh adapters), for the shapes."""
    trainer = Trainer(cfg, hp, mesh, total_steps=1, checkpoint_dir=checkpoint_dir, keep_checkpoints=1)
    try:
        trainer.init_state(template)
        trainer.restore()
        return trainer.params()
    finally:
        trainer.close()


def finetune(
    cfg: LlamaConfig,
    base_params: dict,
    tokenizer,
    task,
    train_set: Sequence[dict],
    hp: TrainHParams,
    mesh,
    *,
    lora_seed: int,
    truncation: str,
    checkpoint_dir: str,
    checkpoint_every: int = 0,
    checkpoint_minutes: float = 0.0,
    fmt: str = "plain",
    keep_trained: bool = False,
    init_from: str = "",
    progress: bool = False,
    desc: str = "training",
    say=lambda msg: None,
    on_step=None,
    dev_set: Sequence[dict] = (),
) -> tuple[dict, dict]:
    """(trained params on the mesh, info) for one fine-tune on `train_set`.

    From the base weights, with fresh adapters from `lora_seed` when cfg has LoRA, or, with `init_from`,
    from the trained model checkpointed there (the previous iteration's, adapters included); either way
    with a fresh optimizer and schedule. A checkpoint in `checkpoint_dir` from an interrupted fine-tune of
    the same data is resumed from its step. Checkpoints are written every `checkpoint_every` steps during
    training once `checkpoint_minutes` have passed since the last (or the start), and of the trained model
    only when `keep_trained` (the caller evaluates the weights in memory). A disk fault while writing one
    is one line. on_step(step, metrics): after each step (TensorBoard). dev_set: the examples whose loss
    selects the epoch when hp.epoch_selection is 'dev_loss'.
    """
    examples, trunc = tokenize_examples(task, train_set, tokenizer, hp.max_length, truncation, fmt=fmt)
    if trunc["truncated"] or trunc["dropped"]:
        say(
            f"{trunc['truncated']} of {len(train_set)} training examples were longer than data.max_length="
            f"{hp.max_length} tokens and had their input cut (instruction, cue and target kept); "
            f"{trunc['dropped']} were left out"
        )
    dev = None
    if hp.epoch_selection == "dev_loss":
        dev, _ = tokenize_examples(task, dev_set, tokenizer, hp.max_length, truncation, fmt=fmt)
    total = steps_per_epoch(len(examples), hp.batch_size) * hp.epochs
    with reporting_disk_faults("a training checkpoint", checkpoint_dir):
        trainer = Trainer(cfg, hp, mesh, total_steps=total, checkpoint_dir=checkpoint_dir, keep_checkpoints=1)
        start_params = add_lora_params(base_params, cfg, jax.random.PRNGKey(lora_seed))
        trainer.init_state(start_params)
        start = 0
        if trainer.checkpoints.latest_step() is not None:
            start = trainer.restore()
            say(f"resuming training at step {start}/{total}")
        elif init_from:
            trainer.init_state(trained_params(cfg, hp, mesh, init_from, start_params))
        trainer.fit(
            examples,
            pad_id=tokenizer.pad_token_id,
            progress=progress,
            desc=desc,
            start_step=start,
            checkpoint_every=checkpoint_every,
            checkpoint_minutes=checkpoint_minutes,
            on_step=on_step,
            dev_examples=dev,
        )
        if keep_trained:
            trainer.save(wait=True)
        trained = trainer.params()
        trainer.close()
    info = {
        "steps": len(trainer.history),
        "examples": len(examples),
        "truncation": trunc,
        "flops": trainer.flops,
        "final_loss": trainer.history[-1]["loss"] if trainer.history else None,
    }
    if dev is not None:
        losses = dev_losses(trainer.history)
        info.update(epochs_run=len(losses), kept_epoch=best_epoch(losses) + 1, dev_losses=losses)
    return trained, info
