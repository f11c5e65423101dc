"""The targeted mutations `tools/mutation_test.py` runs: one small bug each, and the tests that must catch it.

A mutation replaces exact text (each `old` must occur once in its file) and names the pytest node ids
that guard the behaviour. `equivalent` holds the reason when a mutation cannot change what the code
computes; such mutations are run and reported but not scored. Keep `what` to the behaviour a user
would lose, not the edit.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    edits: tuple  # ((old, new), ...)
    tests: tuple
    what: str
    equivalent: str = ""


def m(name, file, edits, tests, what, equivalent=""):
    if isinstance(edits[0], str):
        edits = (edits,)
    return Mutation(
        name, file, tuple(edits), tuple(tests) if not isinstance(tests, str) else (tests,), what, equivalent
    )


TRAIN = "llm2llm_jax/student/train.py"
STEP = "llm2llm_jax/student/step.py"
DECODE = "llm2llm_jax/student/decode.py"
PARALLEL = "llm2llm_jax/common/parallel.py"
LLAMA = "llm2llm_jax/model/llama.py"
KERNELS = "llm2llm_jax/model/kernels.py"
HARDWARE = "llm2llm_jax/model/hardware.py"
ARRAYS_ON_DISK = "llm2llm_jax/student/arrays_on_disk.py"
CHECKPOINT_POLICY = "llm2llm_jax/student/checkpoint_policy.py"
ATTENTION = "llm2llm_jax/model/attention.py"
WEIGHTS = "llm2llm_jax/model/weights.py"
CONFIG = "llm2llm_jax/model/config.py"
TASKS = "llm2llm_jax/data/tasks.py"
FILTERS = "llm2llm_jax/teacher/filters.py"
PROMPTS = "llm2llm_jax/teacher/prompts.py"
LOCAL = "llm2llm_jax/teacher/local.py"
LOOP = "llm2llm_jax/run/controller.py"
SHARDS = "llm2llm_jax/data/shards.py"
LORA = "llm2llm_jax/model/lora.py"
AUGMENT = "llm2llm_jax/augment.py"
SETTINGS = "llm2llm_jax/settings.py"
RESULTS = "llm2llm_jax/results.py"
RUNDIR = "llm2llm_jax/rundir.py"
DISK_FAULTS = "llm2llm_jax/common/disk_faults.py"
FILES = "llm2llm_jax/common/files.py"
LAUNCH = "launch/run.py"
SCORING = "llm2llm_jax/student/scoring.py"
STATS = "llm2llm_jax/stats.py"
TIMING = "llm2llm_jax/timing.py"
EXPORT = "llm2llm_jax/data/export.py"
BATCH = "llm2llm_jax/teacher/batch.py"
PROMPTING = "llm2llm_jax/student/prompting.py"
T_MODES = "tests/test_teacher_modes.py"
T_FAMILIES = "tests/test_families.py"

T_TRAIN = "tests/test_train.py"
T_DECODE = "tests/test_decode.py"
T_LOOP = "tests/test_loop.py"
T_PARITY = "tests/test_model_parity.py"
T_KERNELS = "tests/test_kernels.py"
T_REL = "tests/test_reliability.py"
BATCHING = "llm2llm_jax/student/batching.py"
SAMPLING = "llm2llm_jax/data/sampling.py"
LEAKAGE = "llm2llm_jax/data/leakage.py"
ROUGE_INDEX = "llm2llm_jax/data/rouge_index.py"
SOURCES = "llm2llm_jax/data/sources.py"
TFDS_SOURCE = "llm2llm_jax/data/tfds_source.py"
PREDICT = "llm2llm_jax/student/predict.py"
FLOPS = "llm2llm_jax/student/flops.py"
CHECKS = "llm2llm_jax/config/checks.py"
INIT_POLICY = "llm2llm_jax/run/init_policy.py"
VERIFY = "llm2llm_jax/augment/verify.py"
REPLIES = "llm2llm_jax/teacher/replies.py"
BUDGET = "llm2llm_jax/teacher/budget.py"
BASE = "llm2llm_jax/teacher/base.py"
AUGMENT_BASE = "llm2llm_jax/augment/base.py"
LLM2LLM = "llm2llm_jax/augment/llm2llm.py"
RUN_RESULTS = "llm2llm_jax/run/results.py"
SNAPSHOT = "llm2llm_jax/config/snapshot.py"
LOCK = "llm2llm_jax/run/lock.py"
RUN_STATS = "llm2llm_jax/run/stats.py"
RUN_TIMING = "llm2llm_jax/run/timing.py"
RUN_COMPARE = "llm2llm_jax/run/compare.py"
ESTIMATE = "llm2llm_jax/augment/estimate.py"
RECIPE = "llm2llm_jax/student/recipe.py"
METRICS = "llm2llm_jax/run/metrics.py"
SELECTION = "llm2llm_jax/run/selection.py"
GGUF_EXPORT = "llm2llm_jax/student/gguf_export.py"
DELIVER = "llm2llm_jax/run/deliver.py"
STEPS = "llm2llm_jax/run/steps.py"
STUDENT_EXPORT = "llm2llm_jax/student/export.py"

OPTIMIZER = f"{T_TRAIN}::test_optimizer_equals_an_explicit_optax_chain"
SCHEDULE = f"{T_TRAIN}::test_learning_rate_warms_up_then_decays_by_cosine_to_zero"
CONTROLLER = f"{T_LOOP}::test_controller_sends_wrong_seed_examples_and_keeps_gold_labelled_new_ones"
CONTROLLER_RESUME = (
    f"{T_LOOP}::test_controller_resumed_after_an_interruption_keeps_what_an_uninterrupted_run_keeps"
)
LOGITS = f"{T_PARITY}::test_logits_match_transformers"

MUTATIONS = [
    # ------------------------------------------------------------------ training recipe
    m(
        "lr-constant-after-warmup",
        RECIPE,
        (("        end_value=0.0,\n", "        end_value=hp.learning_rate,\n"),),
        (SCHEDULE, OPTIMIZER),
        "the cosine decay (constant learning rate after warmup)",
    ),
    m(
        "no-warmup",
        RECIPE,
        (
            (
                "        init_value=0.0 if warmup else hp.learning_rate,\n",
                "        init_value=hp.learning_rate,\n",
            ),
        ),
        (SCHEDULE, OPTIMIZER),
        "the linear warmup from zero",
    ),
    m(
        "no-gradient-clipping",
        RECIPE,
        (
            (
                "        clip_by_global_norm(hp.max_grad_norm) if hp.max_grad_norm > 0 else optax.identity(),\n",
                "        optax.identity(),\n",
            ),
        ),
        OPTIMIZER,
        "global-norm gradient clipping",
    ),
    m(
        "weight-decay-ignored",
        RECIPE,
        (
            (
                "        optax.adamw(1.0, b1=hp.adam_b1, b2=hp.adam_b2, eps=hp.adam_eps, weight_decay=hp.weight_decay),\n",
                "        optax.adamw(1.0, b1=hp.adam_b1, b2=hp.adam_b2, eps=hp.adam_eps, weight_decay=0.0),\n",
            ),
        ),
        OPTIMIZER,
        "the configured weight decay",
    ),
    m(
        "adam-betas-swapped",
        RECIPE,
        (
            (
                "        optax.adamw(1.0, b1=hp.adam_b1, b2=hp.adam_b2, eps=hp.adam_eps, weight_decay=hp.weight_decay),\n",
                "        optax.adamw(1.0, b1=hp.adam_b2, b2=hp.adam_b1, eps=hp.adam_eps, weight_decay=hp.weight_decay),\n",
            ),
        ),
        OPTIMIZER,
        "Adam's moment decay rates",
    ),
    m(
        "accumulation-averages-micro-means",
        STEP,
        (
            (
                "        grad_sum = jax.tree.map(lambda a, b: a + b.astype(jnp.float32), grad_sum, g)\n        return (grad_sum, loss_sum + total, count + n), None\n",
                "        grad_sum = jax.tree.map(lambda a, b: a + b.astype(jnp.float32) / jnp.maximum(n, 1.0), grad_sum, g)\n        return (grad_sum, loss_sum + total / jnp.maximum(n, 1.0), count + 1), None\n",
            ),
        ),
        f"{T_TRAIN}::test_accumulation_weights_micro_batches_by_target_tokens",
        "token-weighted gradient accumulation (the loss would depend on micro_batch_size)",
    ),
    m(
        "target-positions-off-by-one",
        BATCHING,
        (
            (
                "    return range(max(len(r.prompt_ids), 1) - 1, min(len(r.prompt_ids) + len(r.target_ids), width) - 1)\n",
                "    return range(max(len(r.prompt_ids), 1), min(len(r.prompt_ids) + len(r.target_ids), width) - 1)\n",
            ),
        ),
        f"{T_TRAIN}::test_loss_covers_exactly_the_target_tokens",
        "the first target token's loss",
    ),
    m(
        "loss-predicts-the-current-token",
        STEP,
        (
            (
                "    next_pos = jnp.minimum(target_positions + 1, input_ids.shape[1] - 1)  # padded entries point at 0\n",
                "    next_pos = jnp.minimum(target_positions, input_ids.shape[1] - 1)  # padded entries point at 0\n",
            ),
        ),
        f"{T_TRAIN}::test_loss_covers_exactly_the_target_tokens",
        "next-token prediction",
    ),
    m(
        "batches-drop-an-example",
        BATCHING,
        (
            (
                "        batches += [chunk[i : i + hp.batch_size] for i in range(0, len(chunk), hp.batch_size)]\n",
                "        batches += [chunk[i : i + hp.batch_size][1:] for i in range(0, len(chunk), hp.batch_size)]\n",
            ),
        ),
        f"{T_TRAIN}::test_length_bucketing_keeps_padding_low",
        "every example once per epoch",
    ),
    m(
        "lora-scale-alpha-not-over-rank",
        (LLAMA),
        (
            (
                "            y = y + mm(low, b) * (cfg.lora_alpha / r)\n",
                "            y = y + mm(low, b) * cfg.lora_alpha\n",
            ),
        ),
        f"{T_TRAIN}::test_lora_matches_peft",
        "LoRA's alpha / rank scale in the forward pass",
    ),
    m(
        "lora-merge-scale",
        LORA,
        (("    scale = cfg.lora_alpha / cfg.lora_rank\n", "    scale = cfg.lora_alpha\n"),),
        f"{T_TRAIN}::test_lora_merge_equals_adapted_model",
        "LoRA's scale when adapters are merged for export",
    ),
    m(
        "lora-base-weights-trained",
        LORA,
        (
            (
                '    """(trainable, frozen): everything is trainable for full fine-tuning; only adapters with LoRA."""\n    if not cfg.lora_rank:\n        return params, {}\n',
                '    """(trainable, frozen): everything is trainable for full fine-tuning; only adapters with LoRA."""\n    if True:\n        return params, {}\n',
            ),
        ),
        f"{T_TRAIN}::test_sharded_equals_single_device",
        "frozen base weights under LoRA",
    ),
    m(
        "lora-b-not-zero",
        LORA,
        (
            (
                "            flat[key] = np.zeros(shape, dtype)\n",
                "            flat[key] = np.full(shape, 0.01, dtype)\n",
            ),
        ),
        f"{T_TRAIN}::test_fresh_adapters_leave_the_model_unchanged",
        "fresh adapters start as the identity",
    ),
    m(
        "optimizer-moments-replicated",
        TRAIN,
        (
            (
                "            lambda node: self.trainable_shardings if jax.tree.structure(node) == params_def else repl,\n            shapes,\n            is_leaf=lambda node: jax.tree.structure(node) == params_def,\n",
                "            lambda node: repl, shapes, is_leaf=lambda node: jax.tree.structure(node) == params_def\n",
            ),
        ),
        f"{T_TRAIN}::test_optimizer_moments_are_sharded_like_params",
        "Adam moments sharded like the params",
    ),
    m(
        "resume-replays-a-step",
        TRAIN,
        (("                    if step > start_step:\n", "                    if step >= start_step:\n"),),
        f"{T_TRAIN}::test_fit_resumed_from_a_checkpoint_equals_an_uninterrupted_fit",
        "resuming training at the step after the checkpoint",
    ),
    # ------------------------------------------------------------------ sharding
    m(
        "fsdp-off",
        PARALLEL,
        (('    ("embed", "fsdp"),\n', '    ("embed", None),\n'),),
        (f"{T_TRAIN}::test_fsdp_and_tensor_axes_split_every_large_parameter",),
        "FSDP (every parameter replicated on a data-parallel mesh)",
    ),
    m(
        "tensor-parallel-mlp-off",
        PARALLEL,
        (('    ("mlp", "tensor"),\n', '    ("mlp", None),\n'),),
        f"{T_TRAIN}::test_fsdp_and_tensor_axes_split_every_large_parameter",
        "tensor parallelism of the MLP",
    ),
    m(
        "batch-not-split-over-fsdp",
        PARALLEL,
        (
            (
                'BATCH_AXES = ("data", "fsdp")  # a batch is split over both data-parallel axes\n',
                'BATCH_AXES = ("data",)  # a batch is split over both data-parallel axes\n',
            ),
        ),
        f"{T_TRAIN}::test_fsdp_and_tensor_axes_split_every_large_parameter",
        "batch split over both data axes",
    ),
    m(
        "mesh-fill-wrong",
        PARALLEL,
        (
            (
                "        shape[shape.index(-1)] = num_devices // known\n",
                "        shape[shape.index(-1)] = known\n",
            ),
        ),
        f"{T_TRAIN}::test_mesh_shape_errors_and_unmatched_rule",
        "a -1 mesh axis takes the remaining devices",
    ),
    m(
        "uneven-dims-not-replicated",
        PARALLEL,
        (("        if axes_tuple and dim % size:\n", "        if False:\n"),),
        f"{T_TRAIN}::test_uneven_dimensions_are_replicated_with_a_warning",
        "a dimension that does not divide over its mesh axes is replicated, not an XLA error",
    ),
    # ------------------------------------------------------------------ decoding
    m(
        "top-p-ignored",
        DECODE,
        (("    if top_p < 1.0:\n", "    if False:\n"),),
        f"{T_DECODE}::test_top_p_keeps_exactly_the_nucleus",
        "nucleus (top-p) sampling",
    ),
    m(
        "top-p-keeps-one-more",
        DECODE,
        (
            (
                "        return jnp.take_along_axis(ranked, kept - 1, axis=-1), kept\n",
                "        return jnp.take_along_axis(ranked, jnp.minimum(kept, ranked.shape[-1] - 1), axis=-1), kept\n",
            ),
        ),
        f"{T_DECODE}::test_top_p_keeps_exactly_the_nucleus",
        "the smallest nucleus reaching top_p",
    ),
    m(
        "temperature-ignored",
        DECODE,
        (("    logits = logits / temperature\n", "    logits = logits\n"),),
        f"{T_DECODE}::test_temperature_sampling_follows_the_softmax",
        "sampling temperature",
    ),
    m(
        "rows-share-one-key",
        DECODE,
        (
            (
                "        return jax.vmap(lambda k, lg: jax.random.categorical(k, lg))(rng, logits).astype(jnp.int32)\n",
                "        return jax.random.categorical(rng[0], logits, axis=-1).astype(jnp.int32)\n",
            ),
        ),
        f"{T_DECODE}::test_a_rows_sample_does_not_depend_on_its_neighbours",
        "per-row sampling keys (the teacher cache's reproducibility)",
    ),
    m(
        "eos-never-ends-a-row",
        DECODE,
        (
            (
                "        return tokens.at[:, step].set(tok), done | jnp.isin(tok, eos), tok, rng\n",
                "        return tokens.at[:, step].set(tok), done, tok, rng\n",
            ),
        ),
        f"{T_DECODE}::test_every_row_stops_at_its_eos",
        "stopping and padding after EOS",
    ),
    m(
        "length-excludes-eos",
        DECODE,
        (
            (
                "    first_eos = jnp.where(is_eos.any(-1), jnp.argmax(is_eos, axis=-1) + 1, max_new_tokens)\n",
                "    first_eos = jnp.where(is_eos.any(-1), jnp.argmax(is_eos, axis=-1), max_new_tokens)\n",
            ),
        ),
        f"{T_DECODE}::test_every_row_stops_at_its_eos",
        "the returned lengths",
    ),
    m(
        "cache-position-stalls",
        LLAMA,
        (
            (
                '                "next_position": positions[:, -1] + 1,\n',
                '                "next_position": positions[:, -1],\n',
            ),
        ),
        (
            f"{T_DECODE}::test_cached_logits_equal_uncached[xla]",
            f"{T_DECODE}::test_generate_equals_greedy_by_full_forward[untied-scan-xla]",
        ),
        "RoPE positions while decoding",
    ),
    m(
        "decode-last-token-from-wrong-slot",
        DECODE,
        (
            (
                "    last = jnp.full((b, 1), t - 1, jnp.int32)  # left padding: every row's newest token is at t - 1\n",
                "    last = jnp.full((b, 1), t - 2, jnp.int32)  # left padding: every row's newest token is at t - 1\n",
            ),
        ),
        f"{T_DECODE}::test_generate_equals_greedy_by_full_forward[tied-scan-cpu]",
        "the prefill's next-token logits",
    ),
    # ------------------------------------------------------------------ model numerics
    m(
        "rope-sign",
        LLAMA,
        (
            (
                "    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)\n",
                "    rotated = jnp.concatenate([x[..., half:], -x[..., :half]], axis=-1)\n",
            ),
        ),
        f"{LOGITS}[mha-untied-scan-cpu]",
        "rotary embeddings",
    ),
    m(
        "rmsnorm-eps-outside",
        LLAMA,
        (
            (
                "        x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.cfg.rms_norm_eps)\n",
                "        x32 = x32 * (jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True)) + self.cfg.rms_norm_eps)\n",
            ),
        ),
        f"{LOGITS}[mha-untied-scan-cpu]",
        "RMSNorm",
    ),
    m(
        "llama3-rope-smoothing",
        LLAMA,
        (
            (
                "        smoothed = (1 - smooth) * scaled / factor + smooth * scaled\n",
                "        smoothed = (1 - smooth) * scaled + smooth * scaled / factor\n",
            ),
        ),
        f"{LOGITS}[mqa-tied-llama3-rope-scan-cpu]",
        "Llama 3 RoPE scaling",
    ),
    m(
        "causal-mask-sees-the-next-token",
        LLAMA,
        (
            (
                "        causal = key_slot[None, :] <= query_slot[:, None]\n",
                "        causal = key_slot[None, :] <= query_slot[:, None] + 1\n",
            ),
        ),
        f"{LOGITS}[mha-untied-scan-xla]",
        "causal masking",
    ),
    m(
        "gqa-tile-not-repeat",
        KERNELS,
        (
            (
                "    qg = q.reshape(b, t, kvh, h // kvh, d)\n",
                "    qg = q.reshape(b, t, h // kvh, kvh, d).swapaxes(2, 3)\n",
            ),
        ),
        f"{LOGITS}[gqa-tied-scan-xla]",
        "grouped-query attention's head mapping",
    ),
    m(
        "cpu-matmul-backward",
        KERNELS,
        (
            (
                "    return da.astype(a.dtype), laid_out_row_major(db).astype(b.dtype)\n",
                "    return da.astype(a.dtype), laid_out_row_major(db * 1.001).astype(b.dtype)\n",
            ),
        ),
        f"{T_PARITY}::test_loss_gradients_match_transformers[gqa-tied-cpu]",
        "the cpu kernels' matmul gradient",
    ),
    m(
        "weight-gradient-rounded-to-compute-dtype",
        KERNELS,
        (
            (
                "    return da.astype(a.dtype), laid_out_row_major(db).astype(b.dtype)\n",
                "    return da.astype(a.dtype), laid_out_row_major(db).astype(a.dtype).astype(b.dtype)\n",
            ),
        ),
        f"{T_KERNELS}::test_matmul_takes_a_weight_as_stored[cpu]",
        "f32 master weights' gradients summed in f32, not rounded through bf16",
    ),
    m(
        "head-table-gradient-rounded-to-compute-dtype",
        KERNELS,
        (
            (
                "    return laid_out_row_major(dx).astype(x.dtype), laid_out_row_major(dtable).astype(table.dtype)\n",
                "    return laid_out_row_major(dx).astype(x.dtype), dtable.astype(x.dtype).astype(table.dtype)\n",
            ),
        ),
        f"{T_KERNELS}::test_tied_head_takes_the_table_as_stored[cpu-table-on-the-left]",
        "the tied head's table gradient summed in f32, not rounded through bf16",
    ),
    m(
        "head-table-always-transposed",
        KERNELS,
        (("HEAD_BY_TABLE_ROWS = 192\n", "HEAD_BY_TABLE_ROWS = 0\n"),),
        f"{T_KERNELS}::test_cpu_tied_head_copies_the_table_transposed_only_for_many_rows[64-False]",
        "a fine-tune step on CPU without a transposed copy of the vocabulary table each way",
    ),
    m(
        "head-by-table-wrong-input-gradient",
        KERNELS,
        (
            (
                "    dx = jnp.matmul(ct, table.astype(x.dtype), preferred_element_type=jnp.float32)\n",
                "    dx = jnp.matmul(ct, table.astype(x.dtype) * 1.05, preferred_element_type=jnp.float32)\n",
            ),
        ),
        f"{T_KERNELS}::test_tied_head_takes_the_table_as_stored[cpu-table-on-the-left]",
        "the tied head's gradient for the hidden states on CPU",
    ),
    m(
        "checkpoints-compressed",
        ARRAYS_ON_DISK,
        (
            (
                "PyTreeCheckpointHandler(use_compression=False)",
                "PyTreeCheckpointHandler(use_compression=True)",
            ),
        ),
        f"{T_TRAIN}::test_checkpoints_are_written_uncompressed_and_compressed_ones_restore",
        "checkpoints written without spending the fine-tune's CPU on zstd",
    ),
    m(
        "checkpoint-clock-of-each-process",
        CHECKPOINT_POLICY,
        (
            (
                "return parallel.broadcast_json(self.clock() - self.last >= self.seconds)",
                "return self.clock() - self.last >= self.seconds",
            ),
        ),
        "tests/test_distributed.py::test_every_process_checkpoints_when_process_0_says_its_minutes_have_passed",
        "every process of a multi-host run checkpointing at the same step",
    ),
    m(
        "checkpoint-minutes-from-the-start",
        CHECKPOINT_POLICY,
        (
            (
                "    def saved(self) -> None:\n        self.last = self.clock()",
                "    def saved(self) -> None:\n        pass",
            ),
        ),
        (
            f"{T_TRAIN}::test_checkpoints_come_at_multiples_of_their_steps_once_their_minutes_have_passed",
            f"{T_TRAIN}::test_a_fit_writes_mid_training_checkpoints_only_once_their_minutes_have_passed",
        ),
        "minutes counted from the last checkpoint, not from the fine-tune's start",
    ),
    m(
        "checkpoint-minutes-ignored",
        TRAIN,
        (
            (
                "policy = CheckpointPolicy(checkpoint_every, checkpoint_minutes)",
                "policy = CheckpointPolicy(checkpoint_every, 0.0)",
            ),
        ),
        f"{T_TRAIN}::test_a_fit_writes_mid_training_checkpoints_only_once_their_minutes_have_passed",
        "a one-minute fine-tune not paying for checkpoints it does not need",
    ),
    m(
        "clip-as-a-select",
        RECIPE,
        (
            (
                "        clip_by_global_norm(hp.max_grad_norm) if hp.max_grad_norm > 0 else optax.identity(),",
                "        optax.clip_by_global_norm(hp.max_grad_norm) if hp.max_grad_norm > 0 else optax.identity(),",
            ),
        ),
        f"{T_TRAIN}::test_clipping_equals_optaxs_and_the_update_writes_each_weight_sized_array_once",
        "AdamW's update in one pass over each weight on CPU (no clipped gradients written in between)",
    ),
    m(
        "clip-scales-small-gradients-up",
        RECIPE,
        (
            (
                "scale = jnp.minimum(1.0, max_norm / optax.tree.norm(updates))",
                "scale = max_norm / optax.tree.norm(updates)",
            ),
        ),
        (
            f"{T_TRAIN}::test_clipping_equals_optaxs_and_the_update_writes_each_weight_sized_array_once",
            f"{T_TRAIN}::test_optimizer_equals_an_explicit_optax_chain",
        ),
        "gradients under the clipping norm left as they are",
    ),
    m(
        "sigterm-leaves-without-a-checkpoint",
        TRAIN,
        (
            (
                "        fetch()\n        self.save(wait=True)\n        raise stopping.Terminated()\n",
                "        raise stopping.Terminated()\n",
            ),
        ),
        f"{T_LOOP}::test_sigterm_stops_in_one_line_releases_the_lock_and_resume_equals_uninterrupted[train]",
        "a preempted fine-tune resuming from the step it was stopped at",
    ),
    m(
        "sigterm-raised-inside-the-noting-block",
        "llm2llm_jax/common/stopping.py",
        (('    if _noting["open"]:\n        _noting["noted"] = True\n        return\n', ""),),
        (
            f"{T_REL}::test_a_sigterm_inside_a_noting_block_is_raised_when_the_block_ends",
            f"{T_LOOP}::test_sigterm_stops_in_one_line_releases_the_lock_and_resume_equals_uninterrupted[train]",
        ),
        "a SIGTERM during a fine-tune waiting for its step's checkpoint",
    ),
    m(
        "attention-softmax-scale",
        KERNELS,
        (
            (
                '    scores = jnp.einsum(f"btkgd,{kv_layout}->bkgts", qg, k).astype(jnp.float32) / math.sqrt(d)\n',
                '    scores = jnp.einsum(f"btkgd,{kv_layout}->bkgts", qg, k).astype(jnp.float32) / d\n',
            ),
        ),
        f"{LOGITS}[mha-untied-scan-xla]",
        "1/sqrt(head_dim) attention scaling",
    ),
    m(
        "auto-kernels-inverted",
        HARDWARE,
        (
            (
                '        name = "cpu" if platforms == {"cpu"} else "xla"\n',
                '        name = "xla" if platforms == {"cpu"} else "cpu"\n',
            ),
        ),
        "tests/test_hardware.py::test_auto_picks_cpu_on_cpus_and_xla_elsewhere",
        "kernels=auto's choice",
    ),
    m(
        "gguf-qk-not-unpermuted",
        WEIGHTS,
        (("            w = unpermute_qk(w, cfg.num_key_value_heads)\n", "            pass\n"),),
        "tests/test_gguf.py::test_smollm2_gguf_import_matches_transformers",
        "llama.cpp's key permutation on GGUF load",
    ),
    # ------------------------------------------------------------------ tasks and data
    m(
        "label-parse-shortest-first",
        TASKS,
        (
            (
                "        candidates = sorted(zip(self.words, self.labels), key=lambda wl: -len(wl[0]))\n",
                "        candidates = sorted(zip(self.words, self.labels), key=lambda wl: len(wl[0]))\n",
            ),
        ),
        "tests/test_tasks.py::test_a_label_inside_a_longer_label_is_not_taken_for_it",
        "longest label first (not entailment vs entailment)",
    ),
    m(
        "number-after-first-####",
        TASKS,
        (
            (
                '        found = _NUMBER.findall(text.rsplit("####", 1)[1])\n',
                '        found = _NUMBER.findall(text.split("####", 1)[1])\n',
            ),
        ),
        "tests/test_tasks.py::test_parse_number",
        "the final answer after the last '####'",
    ),
    m(
        "number-first-not-last",
        TASKS,
        (("        raw = found[-1] if found else None\n", "        raw = found[0] if found else None\n"),),
        "tests/test_tasks.py::test_parse_number",
        "the last number when there is no '####'",
    ),
    m(
        "target-without-leading-space",
        TASKS,
        (
            (
                '        return " " + self.verbalize(example["output"]).strip()\n',
                '        return self.verbalize(example["output"]).strip()\n',
            ),
        ),
        "tests/test_tasks.py::test_classification_prompt_target_and_label_set",
        "the target's leading space",
    ),
    m(
        "stratified-remainder-to-smallest",
        SAMPLING,
        (
            (
                "    for k in sorted(exact, key=lambda k: (-(exact[k] - alloc[k]), k))[: total - sum(alloc.values())]:\n",
                "    for k in sorted(exact, key=lambda k: ((exact[k] - alloc[k]), k))[: total - sum(alloc.values())]:\n",
            ),
        ),
        "tests/test_data.py::test_seed_counts_are_the_largest_remainder_allocation",
        "label proportions of the seed set",
    ),
    m(
        "leakage-ngram-off",
        LEAKAGE,
        (
            (
                "            if shared / len(grams) >= self.overlap and similar_size:\n",
                "            if shared / len(grams) > 1.0 and similar_size:\n",
            ),
        ),
        "tests/test_data.py::test_planted_test_duplicates_are_caught",
        "near-duplicate test leakage",
    ),
    m(
        "leakage-closest-three-only",
        LEAKAGE,
        (("        for i, shared in hits.items():", "        for i, shared in hits.most_common(3):"),),
        "tests/test_rouge_index.py::test_leakage_index_decides_as_checking_every_test_example",
        "every test example sharing n-grams with a candidate is checked",
    ),
    m(
        "truncation-cuts-the-cue",
        BATCHING,
        (
            (
                "            prompt = prompt[max(0, len(prompt) + len(target) - max_length) :]\n",
                "            prompt = prompt[: max_length - len(target)]\n",
            ),
        ),
        "tests/test_data.py::test_tokenization_truncates_or_drops_long_examples",
        "a prompt that cannot fit even without its input keeps its cue",
    ),
    # ------------------------------------------------------------------ teacher
    m(
        "filter-never-duplicate",
        ROUGE_INDEX,
        (
            (
                '        return self.scorer.score(kept, text)["rougeL"].fmeasure > self.threshold\n',
                '        return self.scorer.score(kept, text)["rougeL"].fmeasure > 1.0\n',
            ),
        ),
        (
            "tests/test_teacher.py::test_parsing_and_filters_on_hand_written_replies",
            "tests/test_rouge_index.py::test_filter_drops_duplicates_as_before",
        ),
        "ROUGE-L deduplication",
    ),
    m(
        "filter-forgets-what-it-kept",
        FILTERS,
        (
            (
                '            return None, "duplicate"\n        self.remember(text)\n        return {"input": text, "output": output}, None\n',
                '            return None, "duplicate"\n        return {"input": text, "output": output}, None\n',
            ),
        ),
        "tests/test_teacher.py::test_parsing_and_filters_on_hand_written_replies",
        "deduplication among the candidates of one batch",
    ),
    m(
        "filter-same-label-off",
        FILTERS,
        (
            (
                '            if self.same_label and candidate.get("parent_label") not in (None, label):\n',
                "            if False:\n",
            ),
        ),
        "tests/test_teacher.py::test_parsing_and_filters_on_hand_written_replies",
        "same_label filtering",
    ),
    m(
        "filter-no-test-leak-check",
        FILTERS,
        (("        if self.leakage.check(text):\n", "        if False:\n"),),
        "tests/test_teacher.py::test_parsing_and_filters_on_hand_written_replies",
        "dropping test-set leaks",
    ),
    m(
        "rouge-index-length-bound-inverted",
        ROUGE_INDEX,
        (
            (
                "                if doc is None or not low <= doc[2] <= high:\n",
                "                if doc is None or low <= doc[2] <= high:\n",
            ),
        ),
        "tests/test_rouge_index.py::test_index_decides_as_scoring_every_kept_text",
        "the length bound skips only pairs that cannot be duplicates",
    ),
    m(
        "rouge-index-prefix-one-short",
        ROUGE_INDEX,
        (
            (
                "        return [(tok, k) for _, tok, k in keyed[: len(toks) - self._min_overlap(len(toks)) + 1]]\n",
                "        return [(tok, k) for _, tok, k in keyed[: len(toks) - self._min_overlap(len(toks))]]\n",
            ),
        ),
        "tests/test_rouge_index.py::test_index_decides_as_scoring_every_kept_text",
        "every near duplicate found through the index, none missed",
    ),
    m(
        "rouge-index-shared-words-counted-once",
        ROUGE_INDEX,
        (
            (
                "                if sum((counts & doc[1]).values()) < self._pair_overlap(m, doc[2]):\n",
                "                if len(counts.keys() & doc[1].keys()) < self._pair_overlap(m, doc[2]):\n",
            ),
        ),
        "tests/test_rouge_index.py::test_index_decides_as_scoring_every_kept_text",
        "repeated words counted in the shared-token bound",
    ),
    m(
        "rouge-index-remove-does-nothing",
        ROUGE_INDEX,
        (("            self.docs[ids.pop()] = None\n", "            ids.pop()\n"),),
        "tests/test_rouge_index.py::test_filter_drops_duplicates_as_before",
        "an example the judge dropped no longer blocks its near copies",
    ),
    m(
        "labels-read-in-ascii-only",
        TASKS,
        (
            (
                '    return re.sub(r"[\\W_]+", " ", s.lower()).strip()\n',
                '    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()\n',
            ),
        ),
        "tests/test_parser_properties.py::test_a_label_written_with_the_usual_decoration_reads_back_as_that_label",
        "labels in any script read back as themselves",
    ),
    m(
        "final-answer-rounded-to-28-digits",
        TASKS,
        (('    text = format(n, "f")\n', '    text = format(n.normalize(), "f")\n'),),
        "tests/test_parser_properties.py::test_a_number_written_as_the_final_answer_reads_back_equal",
        "a long final answer reads back digit for digit",
    ),
    m(
        "table-reader-raises-csv-errors",
        "llm2llm_jax/data/tables.py",
        (("        except csv.Error as e:", "        except KeyError as e:"),),
        "tests/test_parser_properties.py::test_a_table_reader_returns_rows_or_raises_a_one_line_data_error",
        "an unreadable CSV cell is one line naming the file, not a traceback",
    ),
    m(
        "lead-in-alone-kept-as-input",
        REPLIES,
        (('    if len(filled) == 1 and filled[0].rstrip().endswith(":"):\n', "    if False:\n"),),
        "tests/test_teacher_modes.py::test_a_weak_teachers_wrapped_reply_is_read_where_its_item_is_unambiguous",
        "a reply that is only a lead-in line gives no input",
    ),
    m(
        "parse-drops-continuation-lines",
        REPLIES,
        (('                parts[current] += "\\n" + line.strip()\n', "                pass\n"),),
        "tests/test_teacher.py::test_parsing_and_filters_on_hand_written_replies",
        "multi-line answers (a worked solution's '#### N' line)",
    ),
    m(
        "malformed-items-vanish",
        REPLIES,
        (("        if parts:\n", '        if parts.get("input") and parts.get("output"):\n'),),
        "tests/test_teacher.py::test_malformed_teacher_text_is_counted_not_fatal",
        "counting malformed teacher items as drops instead of losing them silently",
    ),
    m(
        "prompt-hides-student-answer",
        PROMPTS,
        (
            (
                "        f\"{_show(task, wrong)}\\nStudent's {out_key.lower()}: {student_answer.strip() or '(empty)'}\\n\\n{ask}.\"\n",
                '        f"{_show(task, wrong)}\\n\\n{ask}."\n',
            ),
        ),
        "tests/test_teacher.py::test_generates_and_parses_augmentations[gemini]",
        "showing the teacher what the student answered",
    ),
    m(
        "budget-allows-one-more",
        BUDGET,
        (
            (
                "            if self.max_calls and self.calls + self.in_flight >= self.max_calls:\n",
                "            if self.max_calls and self.calls + self.in_flight > self.max_calls:\n",
            ),
        ),
        "tests/test_teacher.py::test_budget_stops_cleanly[openai]",
        "the teacher call budget",
    ),
    m(
        "cache-never-read",
        BASE,
        (("        if hit is None:\n", "        if True:\n"),),
        "tests/test_teacher.py::test_cache_means_never_paying_twice_and_holds_no_secret[openai]",
        "never paying twice for a cached answer",
    ),
    m(
        "retry-client-errors",
        BASE,
        (
            (
                "            retry=retry_if_exception_type(TransientError),\n",
                "            retry=retry_if_exception_type(Exception),\n",
            ),
        ),
        "tests/test_teacher.py::test_gives_up_after_max_attempts_and_does_not_retry_client_errors[openai]",
        "not retrying 4xx client errors",
    ),
    # ------------------------------------------------------------------ controller
    m(
        "parent-label-from-prediction",
        AUGMENT_BASE,
        (
            (
                '            "parent_label": parent["output"],\n',
                '            "parent_label": parent.get("prediction"),\n',
            ),
        ),
        CONTROLLER,
        "same_label keeps new examples of the gold class",
    ),
    m(
        "all-seed-examples-sent",
        AUGMENT_BASE,
        (
            (
                '        return list(pool) if self.ctx.config.augment.parents == "all" else list(wrong)\n',
                '        return list(pool) if self.ctx.config.augment.parents == "all" else list(self.ctx.seed_set)\n',
            ),
        ),
        CONTROLLER,
        "llm2llm asks the teacher about wrong seed examples only",
    ),
    m(
        "no-dedup-against-seed",
        AUGMENT_BASE,
        (
            (
                '        [ex["input"] for ex in train_set] + worked_example_inputs(task),\n',
                "        worked_example_inputs(task),\n",
            ),
        ),
        CONTROLLER,
        "dropping teacher copies of seed examples and of earlier iterations' examples",
    ),
    m(
        "teacher-seed-ignores-iteration",
        LLM2LLM,
        (
            (
                '                seed = stable_seed(c.seed, "teacher", i, ex["id"], *((r,) if r else ()))\n',
                '                seed = stable_seed(c.seed, "teacher", ex["id"], *((r,) if r else ()))\n',
            ),
        ),
        CONTROLLER,
        "fresh teacher samples in every iteration (not the cached answer of the last)",
    ),
    m(
        "next-set-drops-the-old-one",
        LOOP,
        (
            (
                "            steps.shard(self.dir, self.hooks, i + 1, lambda: list(train_set) + kept)  # D(i+1) = D(i) + A(i)\n",
                "            steps.shard(self.dir, self.hooks, i + 1, lambda: kept + list(seed_set))  # D(i+1) = D(i) + A(i)\n",
            ),
        ),
        CONTROLLER,
        "D(i+1) = Di + Ai (examples kept in earlier iterations stay)",
    ),
    m(
        "filter-forgets-kept-examples",
        LOOP,
        (
            (
                "            filt = make_filter(self.task, self.config, train_set, self.data.test, self.data.dev)\n",
                "            filt = make_filter(self.task, self.config, self.data.seed, self.data.test, self.data.dev)\n",
            ),
        ),
        CONTROLLER,
        "deduplicating against what earlier iterations kept",
    ),
    m(
        "seed-test-leak-kept",
        SOURCES,
        (('        unusable=lambda ex: bool(leaks.check(ex["input"])),\n', "        unusable=None,\n"),),
        CONTROLLER,
        "dropping seed examples that duplicate test examples",
    ),
    m(
        "trains-from-the-previous-iteration",
        TRAIN,
        (
            (
                "        trainer = Trainer(cfg, hp, mesh, total_steps=total, checkpoint_dir=checkpoint_dir, keep_checkpoints=1)\n        start_params = add_lora_params(base_params, cfg, jax.random.PRNGKey(lora_seed))\n        trainer.init_state(start_params)\n",
                '        trainer = Trainer(cfg, hp, mesh, total_steps=total, checkpoint_dir=checkpoint_dir, keep_checkpoints=1)\n        start_params = add_lora_params(\n            globals().get("_last", base_params), cfg, jax.random.PRNGKey(lora_seed)\n        )\n        trainer.init_state(start_params)\n',
            ),
            (
                "        trained = trainer.params()\n        trainer.close()\n",
                '        trained = trainer.params()\n        globals()["_last"] = trained\n        trainer.close()\n',
            ),
        ),
        f"{T_LOOP}::test_loop_trains_every_iteration_from_the_base_weights",
        "every iteration fine-tunes from the base weights",
    ),
    m(
        "reuse-ignores-the-training-set",
        RUN_RESULTS,
        (
            (
                '    content = {\n        "train": [[ex["input"], ex["output"]] for ex in train_set],\n        "weights": weights_id,\n        "config": result_fields(config),\n    }\n',
                '    content = {"train": len(train_set) > 0, "weights": weights_id, "config": result_fields(config)}\n',
            ),
        ),
        CONTROLLER,
        "a changed training set is fine-tuned again, never served from an earlier iteration",
    ),
    m(
        "never-reuses",
        RUN_RESULTS,
        (('        if exists(path) and read_json(path).get("result_key") == key:\n', "        if False:\n"),),
        f"{T_LOOP}::test_a_round_that_keeps_nothing_reuses_the_result_and_the_run_stops",
        "an iteration on unchanged data reuses the last result instead of retraining",
    ),
    m(
        "empty-rounds-never-stop",
        METRICS,
        (
            (
                "    if not kept and empty >= config.teacher.max_empty_rounds:\n",
                "    if not kept and empty > config.teacher.max_empty_rounds:\n",
            ),
        ),
        f"{T_LOOP}::test_a_round_that_keeps_nothing_reuses_the_result_and_the_run_stops",
        "stopping after teacher.max_empty_rounds rounds that kept nothing",
    ),
    m(
        "extended-run-not-continued",
        LOOP,
        (
            (
                '        return self.dir.has_metrics(i) and not (i + 1 < self.iterations and "note" in self.dir.metrics(i))\n',
                "        return self.dir.has_metrics(i)\n",
            ),
        ),
        f"{T_LOOP}::test_a_finished_run_extended_with_more_iterations_equals_a_longer_run",
        "continuing a finished run asked for more iterations",
    ),
    m(
        "mesh-divisibility-unchecked",
        CHECKS,
        (("        lambda v: v % rows == 0,\n", "        lambda v: True,\n"),),
        "tests/test_settings.py::test_each_bad_field_is_one_line_that_names_it_and_the_fix[train__batch_size=12]",
        "a batch that does not split over the mesh is refused before any work",
    ),
    # ------------------------------------------------------------------ more of the same kinds
    m(
        "batches-in-length-order",
        BATCHING,
        (("    if shuffle:\n        rng.shuffle(batches)\n", ""),),
        f"{T_TRAIN}::test_batches_are_shuffled_across_length_buckets",
        "shuffled batch order across length buckets",
    ),
    m(
        "export-skips-the-transpose",
        WEIGHTS,
        (
            (
                '            yield f"model.layers.{layer}.{suffix}", (arr.T if transpose else arr)\n',
                '            yield f"model.layers.{layer}.{suffix}", arr\n',
            ),
        ),
        "tests/test_weights_io.py::test_round_trip_through_transformers",
        "exported checkpoints load in transformers",
    ),
    m(
        "hf-config-ignores-kv-heads",
        CONFIG,
        (
            (
                '            num_key_value_heads=d.get("num_key_value_heads") or d["num_attention_heads"],\n',
                '            num_key_value_heads=d["num_attention_heads"],\n',
            ),
        ),
        f"{LOGITS}[gqa-tied-scan-cpu]",
        "loading GQA checkpoints",
    ),
    m(
        "no-eos-after-targets",
        PROMPTING,
        (
            (
                "        target = _ids(tokenizer, task.target(example)) + ([eos] if add_eos and eos is not None else [])\n",
                "        target = _ids(tokenizer, task.target(example))\n",
            ),
        ),
        "tests/test_data.py::test_tokenization_truncates_or_drops_long_examples",
        "the student learns to stop",
    ),
    m(
        "runaway-not-dropped",
        FILTERS,
        (
            (
                "        if len(text) > self.max_input_chars or len(raw) > self.max_output_chars:\n",
                "        if False:\n",
            ),
        ),
        "tests/test_teacher.py::test_parsing_and_filters_on_hand_written_replies",
        "dropping runaway generations",
    ),
    m(
        "budget-never-charged",
        BUDGET,
        (('            s["calls"] += 1\n', '            s["calls"] += 0\n'),),
        "tests/test_teacher.py::test_budget_stops_cleanly[gemini]",
        "counting teacher calls against the budget",
    ),
    m(
        "same-label-not-asked",
        PROMPTS,
        (("    if same_label and task.is_classification:\n", "    if False:\n"),),
        "tests/test_teacher.py::test_parsing_and_filters_on_hand_written_replies",
        "asking the teacher for the failed example's class",
    ),
    m(
        "more-iterations-refused",
        SNAPSHOT,
        (('    "iterations",\n', ""),),
        f"{T_LOOP}::test_workdir_with_another_config_is_refused",
        "extending a run with more iterations",
    ),
    # issue 19: runs that never mix, never lose work and never pay twice
    m(
        "lock-overwritten",
        FILES,
        (("        os.link(tmp, path)\n", "        os.replace(tmp, path)\n        os.link(path, tmp)\n"),),
        f"{T_REL}::test_a_run_directory_in_use_is_refused_at_once_naming_its_holder",
        "one writer per run directory",
    ),
    m(
        "stale-lock-kept",
        LOCK,
        (
            (
                '        if holder.get("host") == self.me["host"] and isinstance(pid, int) and not _alive(pid):\n',
                '        if holder.get("host") == self.me["host"] and isinstance(pid, int) and False:\n',
            ),
        ),
        f"{T_REL}::test_a_lock_left_by_a_dead_process_is_taken_over_with_a_note",
        "taking over a dead run's lock",
    ),
    m(
        "identity-before-preflight",
        LOCK,
        (
            (
                "            new_identity = check_snapshot(config, workdir, ignore=(LOCK_NAME,))\n            on_main(preflight)\n",
                "            new_identity = check_snapshot(config, workdir, ignore=(LOCK_NAME,))\n            write_snapshot(config, workdir)\n            on_main(preflight)\n",
            ),
        ),
        f"{T_REL}::test_a_start_that_fails_leaves_the_workdir_as_it_found_it",
        "a failed start leaving the run directory as it was",
    ),
    m(
        "outputs-without-config-reused",
        SNAPSHOT,
        (("        if found:\n", "        if False:\n"),),
        f"{T_REL}::test_a_workdir_with_outputs_but_no_config_is_refused",
        "refusing results of an unknown config",
    ),
    m(
        "budget-per-invocation",
        BUDGET,
        (("                self.spent.update(read_json(path))\n", "                pass\n"),),
        f"{T_REL}::test_the_teacher_budget_caps_the_run_over_every_invocation",
        "a budget for the run, not the call",
    ),
    m(
        "teacher-not-checked",
        LOOP,
        (
            (
                "            self.teachers.teacher().check_reachable()\n",
                "            self.teachers.teacher()\n",
            ),
        ),
        f"{T_REL}::test_an_unreachable_teacher_is_found_before_any_work_naming_its_url",
        "finding an unreachable teacher before any work",
    ),
    m(
        "unparseable-not-counted",
        LLM2LLM,
        (("            if not parsed:\n", "            if False:\n"),),
        f"{T_REL}::test_replies_that_parse_to_nothing_are_counted_and_warned_about",
        "counting unparseable replies",
    ),
    m(
        "disk-fault-traceback",
        DISK_FAULTS,
        (
            (
                "        fault = disk_error(e)\n        if fault is None:\n            raise\n",
                "        fault = disk_error(e)\n        if True:\n            raise\n",
            ),
        ),
        f"{T_REL}::test_a_full_disk_is_one_line_naming_the_path_and_the_rerun_completes",
        "a full disk reported as one line",
    ),
    m(
        "finished-run-rewritten",
        FILES,
        (("        if read_bytes(path) == data:\n", "        if False:\n"),),
        f"{T_REL}::test_summarising_a_finished_run_writes_nothing",
        "a finished run that is only read",
    ),
    m(
        "trained-model-always-checkpointed",
        TRAIN,
        (("        if keep_trained:\n", "        if True:\n"),),
        f"{T_REL}::test_the_trained_model_is_checkpointed_only_when_kept_and_a_full_disk_there_is_one_line",
        "no checkpoint of the trained model unless asked",
    ),
    m(
        "loss-history-not-restored",
        TRAIN,
        (
            (
                '        self.state, self.history = restored["state"], list(restored["history"])\n',
                '        self.state = restored["state"]\n',
            ),
        ),
        f"{T_TRAIN}::test_fit_resumed_from_a_checkpoint_equals_an_uninterrupted_fit",
        "the final loss after a resume",
    ),
    m(
        "ctrl-c-traceback",
        LAUNCH,
        (("        line, status = stop_message(stop)\n", "        raise\n"),),
        f"{T_REL}::test_ctrl_c_and_sigterm_say_how_to_continue_and_exit_with_their_status[ctrl-c]",
        "Ctrl-C as one line and exit 130",
    ),
    m(
        "hub-retries-shown",
        TFDS_SOURCE,
        (("        lg.setLevel(logging.ERROR)\n", "        pass\n"),),
        "tests/test_data.py::test_an_unreachable_hub_is_one_line_after_its_retries",
        "one line when the hub is down",
    ),
    # issue 20: evidence
    m(
        "score-first-token-only",
        SCORING,
        (
            (
                "        scores = scores + rest.sum(axis=-1).reshape(b, c)\n",
                "        scores = scores + 0 * rest.sum(axis=-1).reshape(b, c)\n",
            ),
        ),
        "tests/test_scoring.py::test_candidate_logprobs_equal_the_full_sequence_likelihood",
        "scoring every token of a label's answer",
    ),
    m(
        "score-cache-copies-interleaved",
        LLAMA,
        (
            (
                "    rep = lambda x, axis=0: jnp.repeat(x, copies, axis=axis)  # noqa: E731\n",
                "    rep = lambda x, axis=0: jnp.concatenate([x] * copies, axis=axis)  # noqa: E731\n",
            ),
        ),
        "tests/test_scoring.py::test_candidate_logprobs_equal_the_full_sequence_likelihood",
        "each prompt's cache paired with its own candidates",
    ),
    m(
        "score-without-eos",
        PROMPTING,
        (
            (
                '    return [target_ids(task, {"input": "", "output": label}, tokenizer, fmt) for label in task.labels]\n',
                '    return [\n        target_ids(task, {"input": "", "output": label}, tokenizer, fmt, add_eos=False)\n        for label in task.labels\n    ]\n',
            ),
        ),
        "tests/test_scoring.py::test_score_mode_predicts_the_most_likely_label",
        "answers scored as training writes them",
    ),
    m(
        "wilson-as-clopper-pearson",
        RUN_STATS,
        (
            (
                '    ci = binomtest(int(correct), int(total)).proportion_ci(confidence_level=confidence, method="wilson")\n',
                '    ci = binomtest(int(correct), int(total)).proportion_ci(confidence_level=confidence, method="exact")\n',
            ),
        ),
        "tests/test_stats.py::test_wilson_interval_matches_the_formula",
        "the Wilson interval",
    ),
    m(
        "paired-unpaired",
        RUN_STATS,
        (("            res = stats.ttest_rel(a, b)\n", "            res = stats.ttest_ind(a, b)\n"),),
        "tests/test_stats.py::test_paired_comparison_tests_the_differences",
        "a paired test for paired runs",
    ),
    m(
        "compile-in-stage",
        RUN_TIMING,
        (
            (
                "            self._add(kind, elapsed - inner - (compile_inside - inner_compile))\n",
                "            self._add(kind, elapsed - inner)\n",
            ),
        ),
        "tests/test_timing.py::test_stage_clock_splits_compilation_and_nested_blocks",
        "compilation counted apart",
    ),
    m(
        "init-previous-ignored",
        INIT_POLICY,
        (
            (
                '        return run_dir.iter_path(run_dir.model_of(i - 1), "checkpoints") if i > 0 else ""\n',
                '        return ""\n',
            ),
        ),
        "tests/test_ablations.py::test_train_init_previous_continues_the_previous_iterations_model",
        "continuing the previous iteration's model",
    ),
    m(
        "parents-all-ignored",
        AUGMENT_BASE,
        (
            (
                '        return list(pool) if self.ctx.config.augment.parents == "all" else list(wrong)\n',
                "        return list(wrong)\n",
            ),
        ),
        "tests/test_ablations.py::test_parents_all_asks_about_every_seed_example",
        "augmenting every seed example",
    ),
    m(
        "from-augmented-ignored",
        LOOP,
        (
            (
                "        return train_set if self.config.augment.from_augmented else self.data.seed\n",
                "        return self.data.seed\n",
            ),
        ),
        "tests/test_ablations.py::test_from_augmented_lets_kept_examples_be_parents",
        "kept examples as parents",
    ),
    m(
        "shared-results-ignored",
        RUN_RESULTS,
        (
            (
                "    if shared_dir and parallel.broadcast_json(has_shared(shared_dir, key)):\n",
                "    if False:\n",
            ),
        ),
        "tests/test_compare.py::test_every_method_and_seed_runs_once_and_iteration_0_is_shared",
        "iteration 0 computed once per seed",
    ),
    m(
        "baselines-unbudgeted",
        RUN_COMPARE,
        (
            (
                '            rows = run(run_config(config, method, seed, budget if capped else ""))\n',
                '            rows = run(run_config(config, method, seed, ""))\n',
            ),
        ),
        "tests/test_compare.py::test_baselines_get_llm2llms_teacher_requests_per_iteration",
        "the baselines held to LLM2LLM's teacher budget",
    ),
    m(
        "unpaired-differences",
        RUN_COMPARE,
        (
            (
                "                [_final(by_seed[s]) for s in paired_seeds], [_final(baseline[s]) for s in paired_seeds]\n",
                "                [_final(by_seed[s]) for s in paired_seeds], [_final(baseline[s]) for s in paired_seeds[::-1]]\n",
            ),
        ),
        "tests/test_compare.py::test_summary_statistics_are_paired_by_seed",
        "differences paired by seed",
    ),
    m(
        "export-seed-set-only",
        EXPORT,
        (
            (
                '    """The training set of the run\'s last finished iteration, with each kept example\'s teacher and filters."""\n    last = rows[-1]["iteration"]\n    examples = shards.read_iteration(os.path.join(workdir, "shards"), last)\n',
                '    """The training set of the run\'s last finished iteration, with each kept example\'s teacher and filters."""\n    last = 0\n    examples = shards.read_iteration(os.path.join(workdir, "shards"), last)\n',
            ),
        ),
        "tests/test_export.py::test_the_final_training_set_is_exported_with_a_data_card",
        "the exported set is the last iteration's",
    ),
    m(
        "auto-dtype-always-bf16",
        HARDWARE,
        (('        return "float32"\n', '        return "bfloat16"\n'),),
        "tests/test_hardware.py::test_auto_dtype_is_bf16_where_the_hardware_multiplies_it",
        "f32 where bf16 would be emulated",
    ),
    # ------------------------------------------------------------------ issue 20: the default run's speed
    m(
        "learning-rate-not-applied",
        STEP,
        (
            (
                '    params = optax.apply_updates(state["params"], at_learning_rate(updates, learning_rate))\n',
                '    params = optax.apply_updates(state["params"], at_learning_rate(updates, 1e-3))\n',
            ),
        ),
        f"{T_TRAIN}::test_trainer_steps_follow_the_schedule_with_one_compiled_step_per_recipe",
        "the schedule's rate applied in the compiled step",
    ),
    m(
        "schedule-count-stuck",
        TRAIN,
        (("        self.steps_done += 1\n", ""),),
        f"{T_TRAIN}::test_trainer_steps_follow_the_schedule_with_one_compiled_step_per_recipe",
        "the schedule advancing with the steps taken",
    ),
    m(
        "step-shared-across-optimizers",
        TRAIN,
        (
            (
                "        key = (self.cfg, self.mesh, hp.max_grad_norm, hp.adam_b1, hp.adam_b2, hp.adam_eps, hp.weight_decay)\n",
                "        key = (self.cfg, self.mesh, hp.max_grad_norm, hp.adam_b1, hp.adam_b2, hp.adam_eps)\n",
            ),
        ),
        f"{T_TRAIN}::test_trainer_steps_follow_the_schedule_with_one_compiled_step_per_recipe",
        "a compiled step reused only by the same optimizer settings",
    ),
    m(
        "nucleus-never-sorts-the-vocabulary",
        DECODE,
        (
            (
                "    return jax.lax.cond(jnp.all(kept < k), lambda _: cutoff, whole_vocabulary, None)\n",
                "    return cutoff\n",
            ),
        ),
        f"{T_DECODE}::test_nucleus_among_the_top_candidates_equals_the_whole_sorted_vocabulary[flat]",
        "top-p over the whole vocabulary when the candidates do not reach top_p",
    ),
    m(
        "shared-prefix-positions-restart",
        LLAMA,
        (
            (
                "    return repeat_cache_rows(cache, rows, cfg.scan_layers)\n",
                "    return dict(repeat_cache_rows(cache, rows, cfg.scan_layers), next_position=jnp.zeros((rows,), jnp.int32))\n",
            ),
        ),
        f"{T_DECODE}::test_a_shared_prefix_read_once_decodes_as_the_whole_prompts[tied-scan-cpu]",
        "positions that continue after the shared prefix",
    ),
    m(
        "common-prefix-takes-everything",
        PREDICT,
        (
            (
                "    while n < shortest - 1 and all(t[n] == token_lists[0][n] for t in token_lists):\n",
                "    while n < shortest and all(t[n] == token_lists[0][n] for t in token_lists):\n",
            ),
        ),
        "tests/test_flops.py::test_common_prefix_length_rounds_down_and_leaves_a_token",
        "every row keeps a token of its own after the shared prefix",
    ),
    m(
        "eval-answers-out-of-order",
        PREDICT,
        (
            (
                "            for i, answer in zip(chunk, decoded):\n",
                "            for i, answer in zip(sorted(chunk), decoded):\n",
            ),
        ),
        "tests/test_flops.py::test_predictor_batches_by_length_and_answers_in_order",
        "answers returned in the prompts' order after batching by length",
    ),
    m(
        "converted-smollm2-in-bf16",
        "llm2llm_jax/model/loading.py",
        (
            (
                '        save_hf_checkpoint(params, cfg, out_dir, dtype="float32", extra_files=tokenizer_files)\n',
                '        save_hf_checkpoint(params, cfg, out_dir, dtype="bfloat16", extra_files=tokenizer_files)\n',
            ),
        ),
        "tests/test_gguf.py::test_the_converted_smollm2_directory_equals_its_gguf",
        "the converted weights unrounded",
    ),
    m(
        "flops-without-attention",
        FLOPS,
        (
            (
                "    attention = attention_flops_per_token(cfg, context_before + width / 2)\n",
                "    attention = 0.0\n",
            ),
        ),
        "tests/test_flops.py::test_forward_train_and_decode_counts_agree",
        "attention's FLOPs counted",
    ),
    # ------------------------------------------------------------------ teachers (issue 21)
    m(
        "label-not-the-parents",
        LLM2LLM,
        (
            (
                '                    cand["raw_output"] = task.verbalize(ex["output"])\n',
                '                    cand["raw_output"] = task.verbalize(task.labels[0])\n',
            ),
        ),
        f"{T_LOOP}::test_label_conditioned_rounds_ask_for_inputs_of_the_gold_class_and_count_the_yield",
        "a label-conditioned example carries its parent's class",
    ),
    m(
        "requests-share-one-seed",
        LLM2LLM,
        (
            (
                '                seed = stable_seed(c.seed, "teacher", i, ex["id"], *((r,) if r else ()))\n',
                '                seed = stable_seed(c.seed, "teacher", i, ex["id"])\n',
            ),
        ),
        f"{T_MODES}::test_several_requests_per_example_each_with_its_own_seed_and_the_label_attached",
        "several requests per example sample different examples",
    ),
    m(
        "asked-counts-requests",
        LLM2LLM,
        (('            "asked": len(requests) * k,\n', '            "asked": len(requests),\n'),),
        f"{T_LOOP}::test_label_conditioned_rounds_ask_for_inputs_of_the_gold_class_and_count_the_yield",
        "the yield's denominator: every example asked for",
    ),
    m(
        "schema-refusal-unrecognised",
        BASE,
        (("    return any(\n", "    return False and any(\n"),),
        (
            f"{T_MODES}::test_a_refused_schema_falls_back_to_text_once[gemini]",
            f"{T_MODES}::test_a_refused_schema_falls_back_to_text_once[openai]",
        ),
        "a server that refuses the schema still answers, as text",
    ),
    m(
        "schema-never-sent",
        BASE,
        (
            (
                "        return request if self.structured and request.schema is not None else request.text_only()\n",
                "        return request.text_only()\n",
            ),
        ),
        f"{T_MODES}::test_structured_reply_sends_the_schema_and_is_parsed[openai]",
        "structured outputs sent",
    ),
    m(
        "batch-record-not-read",
        BATCH,
        (("        job = files.read_json(path) if files.exists(path) else None\n", "        job = None\n"),),
        f"{T_MODES}::test_a_run_killed_while_its_batch_job_runs_polls_that_job_instead_of_submitting_again[openai]",
        "a rerun polls the batch job it submitted instead of paying for a second",
    ),
    m(
        "failed-batch-record-kept",
        BATCH,
        (("            files.remove(path)\n", ""),),
        f"{T_MODES}::test_a_failed_batch_job_is_one_line_and_the_rerun_submits_again[gemini]",
        "a failed batch job is submitted again by the rerun",
    ),
    m(
        "judge-always-agrees",
        VERIFY,
        (
            ("from llm2llm_jax.teacher.replies import parse_judgement\n", ""),
            ("        if parse_judgement(verdict, task) == task.gold(ex):\n", "        if True:\n"),
        ),
        f"{T_MODES}::test_the_judge_drops_a_mislabelled_candidate",
        "the judge drops what it labels otherwise",
    ),
    m(
        "judge-rejects-stay-kept-for-dedup",
        VERIFY,
        (('            filt.forget(ex["input"])\n', "            pass\n"),),
        f"{T_MODES}::test_the_judge_drops_a_mislabelled_candidate",
        "an input the judge rejected does not block a later one as a duplicate",
    ),
    m(
        "estimate-one-request-per-example",
        ESTIMATE,
        (
            (
                "    requests = len(ctx.seed_set) * c.teacher.requests_per_example * rounds\n",
                "    requests = len(ctx.seed_set) * rounds\n",
            ),
        ),
        (f"{T_MODES}::test_the_estimate_bounds_and_matches_what_the_server_counted[gemini]",),
        "the estimate counts every request",
    ),
    m(
        "budget-by-requests",
        RUN_COMPARE,
        (
            (
                '    return ",".join(str(r.get("parents", r.get("teacher_requests", 0))) for r in rows if "note" not in r)\n',
                '    return ",".join(str(r.get("teacher_requests", 0)) for r in rows if "note" not in r)\n',
            ),
        ),
        "tests/test_compare.py::test_baselines_get_llm2llms_teacher_requests_per_iteration",
        "the baselines get LLM2LLM's parents per iteration",
    ),
    m(
        "old-snapshots-refused",
        SNAPSHOT,
        (
            (
                "    for key, value in ADDED_FIELDS.items():  # an older snapshot: the field had this value before it existed\n",
                "    for key, value in {}.items():  # an older snapshot: the field had this value before it existed\n",
            ),
        ),
        f"{T_MODES}::test_an_older_run_without_the_new_teacher_fields_resumes_when_they_keep_its_behaviour",
        "an older run resumes under a config that keeps its behaviour",
    ),
    m(
        "continuation-always-joined",
        REPLIES,
        (
            (
                "        elif multiline and current is not None and line.strip() and not _FIELD_LINE.match(line):\n",
                "        elif current is not None and line.strip() and not _FIELD_LINE.match(line):\n",
            ),
        ),
        f"{T_MODES}::test_parse_inputs_reads_lists_bare_lines_and_json",
        "a single-line item without the teacher's remark below it",
    ),
    # ------------------------------------------------------------------ the shared prefix in training (issue 20)
    m(
        "rows-forget-the-prefix",
        STEP,
        (
            (
                "        cache=cache,\n        logit_positions=target_positions,\n",
                "        cache=None,\n        logit_positions=target_positions,\n",
            ),
        ),
        f"{T_TRAIN}::test_a_shared_prefix_read_once_gives_the_loss_and_gradients_of_the_whole_rows[cpu-unrolled]",
        "the rows attend to the instruction read once for them",
    ),
    m(
        "prefix-takes-the-last-prompt-token",
        BATCHING,
        (
            (
                "    n = min(len(e.prompt_ids) for e in examples) - 1\n",
                "    n = min(len(e.prompt_ids) for e in examples)\n",
            ),
        ),
        f"{T_TRAIN}::test_the_shared_prefix_is_every_prompts_start_rounded_down",
        "every row keeps the prompt token that predicts its first target",
    ),
    # ------------------------------------------------------------------ model families, prompt formats (issue 22)
    m(
        "gemma-norm-without-the-one",
        LLAMA,
        (
            (
                "            return (x32 * (1.0 + weight.astype(jnp.float32))).astype(in_dtype)\n",
                "            return (x32 * weight.astype(jnp.float32)).astype(in_dtype)\n",
            ),
        ),
        f"{T_FAMILIES}::test_logits_match_transformers[gemma3-mixed-scan-cpu]",
        "Gemma's norms scale by (1 + weight)",
    ),
    m(
        "window-one-too-wide",
        LLAMA,
        (
            (
                "            in_window = query_slot[:, None] - key_slot[None, :] < cfg.sliding_window\n",
                "            in_window = query_slot[:, None] - key_slot[None, :] <= cfg.sliding_window\n",
            ),
        ),
        f"{T_FAMILIES}::test_logits_match_transformers[mistral-window-scan-cpu]",
        "a sliding layer sees exactly sliding_window positions, itself included",
    ),
    m(
        "decoding-ignores-the-window",
        LLAMA,
        (
            (
                "            dense = (causal & in_window)[None] & valid[:, None, :]\n",
                "            dense = (causal | ~in_window)[None] & valid[:, None, :]\n",
            ),
        ),
        f"{T_FAMILIES}::test_greedy_decoding_past_the_window_matches_generate[mistral-window-cpu]",
        "cached decoding keeps the window once the sequence is longer than it",
    ),
    m(
        "local-layers-use-the-global-rope",
        LLAMA,
        (("    own_base = local and cfg.rope_local_theta is not None\n", "    own_base = False\n"),),
        f"{T_FAMILIES}::test_logits_match_transformers[gemma3-mixed-scan-cpu]",
        "Gemma 3's local layers rotate with their own RoPE base",
    ),
    m(
        "query-scale-ignored",
        LLAMA,
        (
            (
                "        if cfg.query_pre_attn_scalar is not None and cfg.query_pre_attn_scalar != d:\n",
                "        if False:\n",
            ),
        ),
        f"{T_FAMILIES}::test_logits_match_transformers[gemma3-mixed-scan-cpu]",
        "Gemma's softmax scale",
    ),
    m(
        "gemma-embeddings-unscaled",
        LLAMA,
        (("            x = x * jnp.asarray(math.sqrt(cfg.hidden_size), x.dtype)\n", "            pass\n"),),
        f"{T_FAMILIES}::test_logits_match_transformers[gemma3-mixed-scan-cpu]",
        "Gemma's embeddings times sqrt(hidden)",
    ),
    m(
        "qk-norm-after-rope",
        LLAMA,
        (
            (
                '        q = nn.with_logical_constraint(q, ("act_batch", "act_length", "act_heads", None))\n        if cfg.traits.qk_norm:\n            q, k = RMSNorm(cfg, d, name="q_norm")(q), RMSNorm(cfg, d, name="k_norm")(k)\n        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)\n        if cfg.query_pre_attn_scalar is not None and cfg.query_pre_attn_scalar != d:\n',
                '        q = nn.with_logical_constraint(q, ("act_batch", "act_length", "act_heads", None))\n        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)\n        if cfg.traits.qk_norm:\n            q, k = RMSNorm(cfg, d, name="q_norm")(q), RMSNorm(cfg, d, name="k_norm")(k)\n        if cfg.query_pre_attn_scalar is not None and cfg.query_pre_attn_scalar != d:\n',
            ),
        ),
        f"{T_FAMILIES}::test_logits_match_transformers[qwen3-gqa-scan-cpu]",
        "query/key norms come before RoPE",
    ),
    m(
        "gemma-gguf-norms-not-shifted",
        WEIGHTS,
        (
            (
                "            w = w - 1.0  # llama.cpp stores these norms' weights with the 1 of (1 + weight) added\n",
                "            w = w + 0.0  # llama.cpp stores these norms' weights with the 1 of (1 + weight) added\n",
            ),
        ),
        "tests/test_gemma3.py::test_gemma3_270m_matches_transformers_on_the_same_gguf",
        "a Gemma GGUF's norm weights lose llama.cpp's added 1",
    ),
    m(
        "chat-target-keeps-the-template-tail",
        PROMPTING,
        (
            (
                "        ids = ids[\n            : ids.index(eos) + 1\n        ]  # the end-of-turn token is learnt; what the template adds after it is not\n",
                "        ids = ids  # the end-of-turn token is learnt; what the template adds after it is not\n",
            ),
        ),
        "tests/test_prompting.py::test_chat_ids_are_transformers_apply_chat_template",
        "the chat answer ends with its end-of-turn token",
    ),
    m(
        "plain-prompts-without-bos",
        PROMPTING,
        (
            (
                '    return [bos] if tokenizer("x", add_special_tokens=True)["input_ids"][:1] == [bos] else []\n',
                "    return []\n",
            ),
        ),
        "tests/test_prompting.py::test_plain_prompts_keep_smollm2s_ids_and_get_a_bos_where_the_tokenizer_adds_one",
        "plain prompts start with the BOS the tokenizer adds (Gemma)",
    ),
    m(
        "teacher-is-always-the-student",
        LOCAL,
        (("        return model in STUDENT or model == student_name\n", "        return True\n"),),
        f"{T_MODES}::test_a_local_teacher_other_than_the_student_is_loaded_for_itself",
        "teacher.model naming another model gets that model",
    ),
    m(
        "decode-ahead-never-used",
        DECODE,
        (
            (
                "    ahead = compilations.compiled_ahead(_call_key(program, cfg, args, options))\n",
                "    ahead = None\n",
            ),
        ),
        "tests/test_decode_ahead.py::test_evaluation_runs_the_program_compiled_ahead",
        "the evaluation's program compiled while the fine-tune runs, not after it",
    ),
    m(
        "ahead-sharding-spec-unpadded",
        "llm2llm_jax/common/compilations.py",
        (
            (
                "            spec = tuple(s.spec) + (None,) * (len(x.shape) - len(s.spec))\n",
                "            spec = tuple(s.spec)\n",
            ),
        ),
        "tests/test_decode_ahead.py::test_evaluation_runs_the_program_compiled_ahead",
        "the program compiled ahead found for weights whose sharding is written another way",
    ),
    m(
        "ahead-ignores-sharding",
        "llm2llm_jax/common/compilations.py",
        (
            (
                "    return structure, tuple((tuple(x.shape), np.dtype(x.dtype), sharding(x)) for x in leaves)\n",
                "    return structure, tuple((tuple(x.shape), np.dtype(x.dtype), None) for x in leaves)\n",
            ),
        ),
        "tests/test_decode_ahead.py::test_weights_of_other_shardings_compile_their_own_program",
        "weights placed otherwise than a program compiled ahead expects get their own program",
    ),
    m(
        "background-compilation-in-a-daemon-thread",
        "llm2llm_jax/common/compilations.py",
        (
            (
                '    threading.Thread(target=run, name="compile").start()\n',
                '    threading.Thread(target=run, name="compile", daemon=True).start()\n',
            ),
        ),
        "tests/test_compilations.py::test_a_process_that_ends_while_a_compilation_runs_exits_cleanly",
        "a run that stops while a program compiles in the background exits with its own status, not an abort",
    ),
    m(
        "teacher-batches-shaped-alone",
        LOCAL,
        (("                shape=shape,\n", "                prefix_multiple=SHAPE_MULTIPLE,\n"),),
        "tests/test_teacher.py::test_local_teacher_decodes_a_call_in_batches_of_one_shape",
        "one compiled decoding program for all the batches of a teacher call",
    ),
    m(
        "teacher-ignores-the-expected-shape",
        LOCAL,
        (("        if self.expected is not None:\n", "        if False:\n"),),
        "tests/test_teacher.py::test_local_teacher_told_a_runs_requests_runs_every_call_on_one_program_compiled_ahead",
        "one teacher program for the whole run, whichever seed examples each round asks about",
    ),
    m(
        "teacher-expected-shape-not-compiled-ahead",
        LOCAL,
        (
            (
                "        self.predictor.compile_ahead(shape, s.max_output_tokens, s.temperature, s.top_p, sampled=True)\n",
                "",
            ),
        ),
        "tests/test_teacher.py::test_local_teacher_told_a_runs_requests_runs_every_call_on_one_program_compiled_ahead",
        "the teacher's program compiled while iteration 0 fine-tunes, not at the first teacher call",
    ),
    m(
        "teacher-expected-shape-ignores-the-prefix",
        LOCAL,
        (
            (
                "            if all(tuple(e[:shared]) == prefix and 0 < len(e) - shared <= width for e in encoded):\n",
                "            if all(0 < len(e) - shared <= width for e in encoded):\n",
            ),
        ),
        "tests/test_teacher.py::test_local_teacher_told_a_runs_requests_runs_every_call_on_one_program_compiled_ahead",
        "requests that do not begin with the expected prefix decoded at their own shape, not cut wrongly",
    ),
    m(
        "run-never-tells-the-teacher",
        LOOP,
        (
            (
                "            self.teachers.teacher().expect(self.augmenter.expected_requests())\n",
                "            pass\n",
            ),
        ),
        f"{T_LOOP}::test_loop_trains_every_iteration_from_the_base_weights",
        "the local teacher told of the run's requests before iteration 0's fine-tune",
    ),
    # ------------------------------------------------------------------ the delivered student
    m(
        "selection-reads-the-test-set",
        SELECTION,
        (
            (
                '    scored = [(r["dev_accuracy"], r["iteration"]) for r in rows if "dev_accuracy" in r]\n',
                '    scored = [(r["test_accuracy"], r["iteration"]) for r in rows if "dev_accuracy" in r]\n',
            ),
        ),
        "tests/test_student.py::test_the_selected_iteration_is_the_best_on_dev_never_on_test",
        "the test set never chooses the delivered student",
    ),
    m(
        "a-tie-replaces-the-kept-student",
        SELECTION,
        (
            (
                '    return all(accuracy > r.get("dev_accuracy", -1.0) for r in earlier)\n',
                '    return all(accuracy >= r.get("dev_accuracy", -1.0) for r in earlier)\n',
            ),
        ),
        "tests/test_student.py::test_the_selected_iteration_is_the_best_on_dev_never_on_test",
        "ties keep the earlier iteration's student",
    ),
    m(
        "dev-split-not-leakage-checked",
        SOURCES,
        (('    pool = [ex for ex in rest if not checker.check(ex["input"])]\n', "    pool = rest\n"),),
        "tests/test_student.py::test_the_dev_split_is_stratified_and_shares_nothing_with_the_seed_or_test_sets",
        "no dev example duplicates a test or seed example",
    ),
    m(
        "dev-evaluated-on-the-test-set",
        STEPS,
        (
            (
                '    dev_preds = run.evaluate(params, dev, f"iter {i} eval dev") if run.dir.has_dev else None\n',
                '    dev_preds = run.evaluate(params, test_eval, f"iter {i} eval dev") if run.dir.has_dev else None\n',
            ),
        ),
        "tests/test_student.py::test_the_run_exports_the_selected_student_and_transformers_predicts_as_we_do",
        "each iteration evaluated on the dev split",
    ),
    m(
        "export-keeps-adapters-unmerged",
        STUDENT_EXPORT,
        (
            (
                "    merged, merged_cfg = merge_lora(params, cfg)\n",
                "    merged, merged_cfg = params, cfg.replace(lora_rank=0)\n",
            ),
        ),
        "tests/test_student.py::test_a_lora_students_adapter_on_its_base_equals_the_merged_export",
        "the exported model carries its trained adapters",
    ),
    m(
        "peft-adapters-not-transposed",
        STUDENT_EXPORT,
        (
            (
                '                yield f"{prefix}.lora_A.weight", np.ascontiguousarray(a.T.astype(np_dtype))\n',
                '                yield f"{prefix}.lora_A.weight", np.ascontiguousarray(a.astype(np_dtype))\n',
            ),
        ),
        "tests/test_student.py::test_a_lora_students_adapter_on_its_base_equals_the_merged_export",
        "PEFT's [rank, in] layout of lora_A",
    ),
    m(
        "gguf-q-rows-not-permuted",
        GGUF_EXPORT,
        (
            (
                '        if cfg.traits.gguf_permuted_qk and hf_name.endswith("q_proj.weight"):\n',
                '        if False and hf_name.endswith("q_proj.weight"):\n',
            ),
        ),
        "tests/test_student.py::test_the_gguf_export_reads_back_here_and_in_transformers",
        "the GGUF export in llama.cpp's q/k row order",
    ),
    m(
        "gguf-added-after-the-run-is-skipped",
        DELIVER,
        (
            (
                "    if run.config.export.gguf:\n        outputs.append(",
                "    if False:\n        outputs.append(",
            ),
        ),
        "tests/test_student.py::test_a_gguf_asked_for_after_the_run_finished_is_added_by_the_next_invocation",
        "a GGUF asked for after the run finished is exported",
    ),
    m(
        "best-epoch-is-the-later-on-ties",
        STEP,
        (
            (
                "    return min(range(len(losses)), key=lambda e: (losses[e], e))\n",
                "    return len(losses) - 1\n",
            ),
        ),
        "tests/test_train.py::test_epochs_chosen_by_dev_loss_keep_the_best_epochs_weights",
        "the epoch with the least dev loss is the one kept",
    ),
    m(
        "patience-one-epoch-late",
        STEP,
        (
            (
                "    return patience > 0 and bool(losses) and len(losses) - 1 - best_epoch(losses) >= patience\n",
                "    return patience > 0 and bool(losses) and len(losses) - 1 - best_epoch(losses) > patience\n",
            ),
        ),
        "tests/test_train.py::test_epochs_chosen_by_dev_loss_keep_the_best_epochs_weights",
        "training stops once patience epochs bring no better dev loss",
    ),
    m(
        "kept-epoch-not-checkpointed",
        TRAIN,
        (
            (
                '            if self.kept is not None:\n                items["kept"]',
                '            if False:\n                items["kept"]',
            ),
        ),
        "tests/test_train.py::test_a_fit_choosing_epochs_resumed_from_a_checkpoint_equals_an_uninterrupted_one",
        "a resumed fine-tune keeps the best epoch it had found",
    ),
    m(
        "dev-loss-without-the-shared-prefix-rows",
        TRAIN,
        (
            (
                '            batch["prefix_ids"] = np.asarray(prefix, np.int32)\n            with jax.set_mesh',
                '            batch["prefix_ids"] = np.zeros((0,), np.int32)\n            with jax.set_mesh',
            ),
        ),
        "tests/test_train.py::test_the_dev_loss_is_the_mean_target_token_loss_of_every_row",
        "the dev loss reads every row's whole prompt",
    ),
    m(
        "comparison-selects-by-test",
        RUN_COMPARE,
        (
            (
                "    iteration, _ = select(rows)\n",
                '    iteration = max(rows, key=lambda r: r["test_accuracy"])["iteration"]\n',
            ),
        ),
        "tests/test_compare.py::test_dev_selected_students_are_paired_with_the_last_iteration_and_fine_tuning",
        "the comparison's delivered students are chosen by dev accuracy",
    ),
    # ------------------------------------------------------------------ the engine's figures and loop
    m(
        "metrics-fetched-after-every-step",
        TRAIN,
        (
            (
                "                    fetched = len(pending) >= FETCH_EVERY or epoch_done or save\n",
                "                    fetched = True\n",
            ),
        ),  # fmt: skip
        f"{T_TRAIN}::test_fit_fetches_metrics_in_groups_and_places_each_batch_a_step_ahead",
        "the host runs ahead of the devices instead of waiting after every step",
    ),
    m(
        "last-metrics-never-fetched",
        TRAIN,
        (
            (
                "                    self._stop_after(fetch)  # one came after the last agreed step\n            fetch()\n",
                "                    self._stop_after(fetch)  # one came after the last agreed step\n",
            ),
        ),  # fmt: skip
        f"{T_TRAIN}::test_fit_fetches_metrics_in_groups_and_places_each_batch_a_step_ahead",
        "every step's metrics reach the history and TensorBoard",
    ),
    m(
        "summary-quotes-the-slowest-iteration",
        "llm2llm_jax/run/summary.py",
        (
            (
                '        rate = statistics.median(s["matmul_per_s"] for s in stored)\n',
                '        rate = min(s["matmul_per_s"] for s in stored)\n',
            ),
        ),
        "tests/test_timing.py::test_a_run_stores_its_devices_speed_each_iteration_and_its_summary_takes_the_median",
        "one iteration that ends on a busy moment does not move the rate a run's FLOP-bound times are quoted against",
    ),
    m(
        "summary-re-measures-the-device",
        "llm2llm_jax/run/summary.py",
        (
            ('    stored = [r["device_flops"] for r in rows if "device_flops" in r]\n', "    stored = []\n"),
        ),  # fmt: skip
        "tests/test_timing.py::test_a_run_stores_its_devices_speed_each_iteration_and_its_summary_takes_the_median",
        "a finished run's FLOP-bound times quote the machine as it ran, not as it is now",
    ),
    m(
        "compile-ahead-forgets-its-purpose",
        "llm2llm_jax/common/compilations.py",
        (
            (
                "        _ahead[key] = compile_in_background(compile_fn, purpose)",
                "        _ahead[key] = compile_in_background(compile_fn)",
            ),
        ),
        "tests/test_batch_shapes.py::test_training_on_fixed_shapes_equals_training_on_each_batchs_own_width",
        "a program compiled ahead is logged without the batch shape it was compiled for",
    ),
    m(
        "compiled-for-drops-the-outer-purpose",
        "llm2llm_jax/common/compilations.py",
        (("        _purpose.text = outer", '        _purpose.text = ""'),),
        "tests/test_compilations.py::test_a_compilation_is_logged_with_what_it_was_compiled_for",
        "leaving a nested compiled_for forgets the purpose around it",
    ),
    m(
        "decode-first-use-compiles-unlabelled",
        DECODE,
        (
            (
                "    with compilations.compiled_for(decode_purpose(ids.shape, len(prefix), options)):",
                "    with compilations.compiled_for(''):",
            ),
        ),
        "tests/test_decode_ahead.py::test_evaluation_runs_the_program_compiled_ahead",
        "a decoding program compiled at its first call is logged without its batch shape",
    ),
    m(
        "auto-attention-ignores-traced-windows",
        HARDWARE,
        (
            (
                '    return "cudnn" if nvidia and takes and windows_static else "blocked"\n',
                '    return "cudnn" if nvidia and takes else "blocked"\n',
            ),
        ),
        "tests/test_hardware.py::test_auto_attention_is_cudnn_where_cudnn_takes_the_model_and_blocked_on_other_gpus",
        "auto attention hands cuDNN a scanned stack whose windows are chosen inside the scan (a dense mask)",
    ),
    m(
        "auto-attention-cudnn-on-any-gpu",
        HARDWARE,
        (("    nvidia = all(", "    nvidia = True or all("),),
        "tests/test_hardware.py::test_auto_attention_is_cudnn_where_cudnn_takes_the_model_and_blocked_on_other_gpus",
        "auto attention picks cuDNN on GPUs that are not NVIDIA's",
    ),
    m(
        "cudnn-lengths-off-by-one",
        KERNELS,
        (
            (
                "        lengths = mask.lengths.astype(jnp.int32)\n",
                "        lengths = mask.lengths.astype(jnp.int32) - 1\n",
            ),
        ),
        "tests/test_kernels.py::test_attention_equals_plain_attention[xla-fused-xla-float32-right]",
        "attention by sequence lengths reads every real key of a right-padded row",
    ),
    m(
        "blocked-window-skips-a-key",
        ATTENTION,
        (("max(0, t0 - reach + 1)", "max(0, t0 - reach + 2)"),),
        "tests/test_kernels.py::test_attention_equals_plain_attention[xla-blocked-float32-right-window]",
        "a blocked query block reads every key its window reaches",
    ),
    m(
        "blocked-backward-forgets-the-scale",
        ATTENTION,
        (
            (
                "        ds = (p * (dp - delta[..., t0:t1, None]) / math.sqrt(d)).astype(dtype)\n",
                "        ds = (p * (dp - delta[..., t0:t1, None])).astype(dtype)\n",
            ),
        ),
        "tests/test_kernels.py::test_attention_equals_plain_attention[xla-blocked-float32-left]",
        "the blocked attention's gradients are the attention's gradients",
    ),
    m(
        "embedding-gradient-summed-in-bf16",
        LLAMA,
        (
            (
                "            dtype=cfg.jnp_param_dtype,\n            param_dtype=cfg.jnp_param_dtype,\n",
                "            dtype=cfg.jnp_dtype,\n            param_dtype=cfg.jnp_param_dtype,\n",
            ),
        ),
        "tests/test_model_parity.py::test_bf16_embedding_gradient_is_summed_in_f32[False]",
        "a token repeated across a batch has its embedding gradient summed in f32",
    ),
    m(
        "gpu-flags-override-the-users",
        "llm2llm_jax/common/gpu_flags.py",
        (
            (
                '    added = [flag for flag in GPU_XLA_FLAGS if flag.split("=", 1)[0] not in named]\n',
                "    added = list(GPU_XLA_FLAGS)\n",
            ),
        ),
        "tests/test_gpu_flags.py::test_flags_are_added_on_a_gpu_or_when_asked_and_the_users_own_win",
        "an XLA flag the user set keeps the user's value",
    ),
    m(
        "batch-shape-targets-from-its-own-width-only",
        "llm2llm_jax/student/batching.py",
        (
            (
                "        fitting = [len(_predicting(e, w)) for e, r in zip(examples, rounded) if r <= w]\n",
                "        fitting = [len(_predicting(e, w)) for e, r in zip(examples, rounded) if r == w]\n",
            ),
        ),
        "tests/test_batch_shapes.py::test_a_short_row_with_a_long_answer_sets_the_target_count_of_a_wider_shape",
        "a batch at a width also holds shorter rows, whose targets its target positions must hold",
    ),
    m(
        "fewest-widths-pads-only-the-widest-candidate",
        "llm2llm_jax/student/batching.py",
        (
            (
                "        cost[j][1] = widths[j] * upto[j + 1]\n",
                "        cost[j][1] = widths[j] * (upto[j + 1] - upto[j])\n",
            ),
        ),
        "tests/test_batch_shapes.py::test_the_widths_chosen_pad_no_more_than_any_other_choice",
        "the narrowest chosen width pads every example narrower than it",
    ),
    m(
        "steps-ignore-programs-compiled-ahead",
        "llm2llm_jax/student/train.py",
        (
            (
                "        step_fn = compilations.compiled_ahead((self._step_key, *shape)) or self._step_fn\n",
                "        step_fn = self._step_fn\n",
            ),
        ),
        "tests/test_batch_shapes.py::test_training_on_fixed_shapes_equals_training_on_each_batchs_own_width",
        "a fine-tune's fixed shapes run on the programs compiled ahead, not compiled again by jit",
    ),
    m(
        "background-compilation-counted-whole",
        "llm2llm_jax/common/compilations.py",
        (('            if not getattr(_background, "active", False):\n', "            if True:\n"),),
        "tests/test_compilations.py::test_a_background_compilation_counts_only_the_wait_for_it",
        "a compilation that overlapped the run's work is not the run's compile time",
    ),
    m(
        "one-width-forgets-compiled-widths",
        "llm2llm_jax/student/predict.py",
        (("    fits = [w for w in known if needed <= w <= REUSE_UP_TO * needed]\n", "    fits = []\n"),),
        "tests/test_flops.py::test_a_call_reuses_a_compiled_width_that_is_at_most_twice_what_it_needs",
        "a later call decodes at a width already compiled when its prompts fit",
    ),
    m(
        "label-read-from-a-word-prefix",
        TASKS,
        (
            (
                '            if text == w or text.startswith(w + " "):\n',
                "            if text.startswith(w):\n",
            ),
        ),
        "tests/test_tasks.py::test_a_word_that_merely_begins_with_a_label_is_not_that_label",
        "a reply is read as a label only when it says the label's whole word",
    ),
    m(
        "a-pasted-key-is-accepted",
        "llm2llm_jax/config/checks.py",
        (("    if not ENV_NAME.fullmatch(value) or value.startswith(KEY_PREFIXES):\n", "    if False:\n"),),
        "tests/test_settings.py::test_a_key_pasted_into_an_env_field_is_refused_without_showing_it",
        "an API key pasted where a variable's name belongs is refused, and never written",
    ),
    m(
        "finished-run-shown-past-the-iterations-asked",
        "llm2llm_jax/run/controller.py",
        (("        if held > self.iterations:\n", "        if False:\n"),),
        f"{T_LOOP}::test_a_finished_run_extended_with_more_iterations_equals_a_longer_run",
        "a finished run asked for fewer iterations than it holds says so instead of showing them all",
    ),
    m(
        "server-delay-ignored",
        "llm2llm_jax/teacher/base.py",
        (
            (
                "            return backoff(state) if asked is None else min(asked, s.max_server_delay)\n",
                "            return backoff(state)\n",
            ),
        ),
        "tests/test_teacher.py::test_the_servers_own_delay_is_waited_capped_and_counted",
        "a rate-limited call waits as long as the server asked (capped), not the project's own backoff",
    ),
    m(
        "server-delay-uncapped",
        "llm2llm_jax/teacher/base.py",
        (
            (
                "            return backoff(state) if asked is None else min(asked, s.max_server_delay)\n",
                "            return backoff(state) if asked is None else asked\n",
            ),
        ),
        "tests/test_teacher.py::test_the_servers_own_delay_is_waited_capped_and_counted",
        "a server asking for a long wait is waited at most teacher.max_server_delay",
    ),
    m(
        "sigterm-kills-without-unwinding",
        "launch/run.py",
        (("    stop_on_signals()\n", ""),),
        "tests/test_reliability.py::test_ctrl_c_and_sigterm_say_how_to_continue_and_exit_with_their_status[sigterm]",
        "a preempted run releases its lock and says how to continue",
    ),
    m(
        "stale-heartbeat-never-taken-over",
        "llm2llm_jax/run/lock.py",
        (
            (
                "        if isinstance(beat, (int, float)) and time.time() - beat > STALE_AFTER_SECONDS:\n",
                "        if False:\n",
            ),
        ),
        "tests/test_reliability.py::test_a_lock_whose_heartbeat_stopped_is_taken_over_from_another_host",
        "a rerun on a VM recreated after preemption takes over the silent old lock",
    ),
    m(
        "seed-duplicates-kept",
        "llm2llm_jax/data/sampling.py",
        (('        if examples[i]["input"] in inputs or bad(examples[i]):\n', "        if False:\n"),),
        "tests/test_data.py::test_a_seed_set_keeps_its_size_and_labels_when_drawn_rows_repeat_or_leak",
        "a seed set of the size asked for, each input once and none a test example",
    ),
    m(
        "long-prompts-lose-the-instruction",
        "llm2llm_jax/student/batching.py",
        (
            (
                "            fitted = prompting.fit_input(task, ex, tokenizer, fmt, max_length - len(target))\n",
                "            fitted = None\n",
            ),
        ),
        "tests/test_data.py::test_tokenization_truncates_or_drops_long_examples",
        "a training example too long for data.max_length keeps its instruction and cue, losing the input's end",
    ),
    m(
        "custom-task-meanings-dropped",
        TASKS,
        (
            (
                '        spec["class_meanings"] = _meanings(spec["class_meanings"])\n',
                '        del spec["class_meanings"]\n',
            ),
        ),
        "tests/test_tasks.py::test_a_custom_task_from_a_file_gets_the_teacher_prompts_of_the_built_in_one",
        "a user's own task tells the teacher what each class means, as a built-in task does",
    ),
    m(
        "wrapped-replies-unread",
        "llm2llm_jax/teacher/replies.py",
        (
            (
                "        body = [line for line in filled if not _FENCE.match(line) and not _LEAD_IN.match(line)]\n",
                "        body = filled\n",
            ),
        ),
        "tests/test_teacher_modes.py::test_a_weak_teachers_wrapped_reply_is_read_where_its_item_is_unambiguous",
        "a weak teacher's item behind a lead-in line or a code fence is still read",
    ),
    m(
        "pcie-h100-quoted-as-sxm",
        "llm2llm_jax/student/flops.py",
        (('    ("h100 pcie", 756e12),\n', ""),),
        "tests/test_timing.py::test_accelerators_are_quoted_against_their_datasheet_peak",
        "each accelerator's MFU against its own datasheet peak",
    ),
    m(
        "cpu-calibrated-on-bf16-results",
        "llm2llm_jax/student/flops.py",
        (
            (
                "        return matmul_rate(n=2048, repeats=10, dtype=dtype, fastest=True, product=kernels.cpu_matmul)\n",
                "        return matmul_rate(n=2048, repeats=10, dtype=dtype, fastest=True)\n",
            ),
        ),
        "tests/test_timing.py::test_a_cpu_is_calibrated_on_the_product_its_kernels_run",
        "a CPU's FLOP-bound times quoted against the product its kernels run, not XLA's slower bf16-result one",
    ),
    m(
        "backward-transposes-every-weight",
        "llm2llm_jax/model/kernels.py",
        (("    return activation_copies < weight_copy\n", "    return False\n"),),
        "tests/test_kernels.py::test_cpu_matmul_backward_copies_the_weight_transposed_only_for_many_rows",
        "a fine-tune's backward transposes its few rows of activations, not every weight",
    ),
    m(
        "backward-transposes-the-activations-of-many-rows",
        "llm2llm_jax/model/kernels.py",
        (("    return activation_copies < weight_copy\n", "    return True\n"),),
        "tests/test_kernels.py::test_cpu_matmul_backward_copies_the_weight_transposed_only_for_many_rows",
        "with many rows the backward copies the smaller array, the weight, transposed",
    ),
    m(
        "gguf-parsed-through-memmap-views",
        "llm2llm_jax/model/gguf_reader.py",
        (("        self._array = value.view(np.ndarray)\n", "        self._array = value\n"),),
        "tests/test_gguf.py::test_the_mapped_reader_reads_what_ggufs_own_reader_reads_from_plain_arrays",
        "a GGUF's metadata parsed from a plain array, without memmap's Python overhead on every value",
    ),
    m(
        "jax-preemption-notifier-takes-sigterm",
        "llm2llm_jax/common/parallel.py",
        (('    jax.config.update("jax_enable_preemption_service", False)\n', ""),),
        "tests/test_distributed.py::test_sigterm_still_stops_a_run_after_it_joins_its_processes",
        "a multi-process run still stops on SIGTERM: JAX's preemption notifier does not take the signal over",
    ),
    m(
        "processes-agree-on-a-sigterm-at-another-step",
        "llm2llm_jax/student/train.py",
        (
            (
                "        return fetched and parallel.any_process(terminated())\n",
                "        return not fetched and parallel.any_process(terminated())\n",
            ),
        ),
        "tests/test_distributed.py::"
        "test_a_sigterm_to_one_process_stops_both_at_one_checkpointed_step_and_the_rerun_equals_the_run",
        "the processes of a run compare notes on a SIGTERM where the loop fetches, waiting for the devices anyway",
    ),
    m(
        "processes-skip-the-agreement-as-a-fine-tune-ends",
        "llm2llm_jax/student/train.py",
        (
            (
                "                if noting and jax.process_count() > 1 and parallel.any_process(terminated()):\n",
                "                if False:\n",
            ),
        ),
        "tests/test_distributed.py::"
        "test_a_sigterm_after_the_last_agreed_step_stops_every_process_at_the_fine_tunes_end",
        "a SIGTERM after the last step where the processes compared notes still stops all of them together",
    ),
    m(
        "unrolled-layers-traced-one-by-one",
        "llm2llm_jax/model/llama.py",
        (
            (
                "                if self.is_initializing():  # the layer's params are created by calling it as a module\n",
                "                if True:\n",
            ),
        ),
        "tests/test_model_parity.py::test_each_unrolled_layer_is_traced_once_and_computes_what_calling_it_computes",
        "an unrolled stack traces one layer's Python, not every layer's",
    ),
]
