"""Training on a (2,2,2) mesh of 8 simulated CPU devices equals one device, with each kernel set; masking,
overfitting, LoRA, orbax."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm2llm_jax.common import parallel
from llm2llm_jax.model.config import tiny_config
from llm2llm_jax.model.llama import init_params
from llm2llm_jax.model.lora import add_lora_params, merge_lora, split_trainable
from llm2llm_jax.student.batching import Example, collate, make_batches
from llm2llm_jax.student.recipe import TrainHParams
from llm2llm_jax.student.step import token_loss
from llm2llm_jax.student.train import Trainer, host_params


def padding_fraction(batches) -> float:
    real = total = 0
    for b in batches:
        real += int(b["attention_mask"].sum())
        total += b["attention_mask"].size
    return 1.0 - real / max(total, 1)


def _examples(n=16, seed=0, vocab=256):
    rs = np.random.RandomState(seed)
    return [
        Example(
            prompt_ids=list(rs.randint(3, vocab, rs.randint(3, 12))),
            target_ids=list(rs.randint(3, vocab, rs.randint(2, 8))) + [2],
        )
        for _ in range(n)
    ]


def _one_device_mesh():
    return parallel.make_mesh((1, 1, 1), devices=jax.devices()[:1])


def _run_two_steps(cfg, params, mesh, hp, batch):
    trainer = Trainer(cfg, hp, mesh, total_steps=10)
    trainer.init_state(params)
    m1 = trainer.step(batch)
    m2 = trainer.step(batch)
    return [jax.device_get(m) for m in (m1, m2)], host_params(trainer.params())  # base + adapters under LoRA


KERNELS = ["cpu", "xla"]


@pytest.mark.slow
@pytest.mark.multi_device
@pytest.mark.parametrize("lora,kernels", [(0, "cpu"), (4, "xla")], ids=["full-cpu", "lora-xla"])
def test_sharded_equals_single_device(lora, kernels):
    """Two optimizer steps on mesh (2,2,2) and on one device: the same losses and parameters. (Every gradient
    leaf, for both kernel sets with and without LoRA, is compared in the test after this one.)"""
    assert len(jax.devices()) == 8
    cfg = tiny_config(lora_rank=lora, kernels=kernels)
    params = add_lora_params(
        init_params(cfg.replace(lora_rank=0), jax.random.PRNGKey(0)), cfg, jax.random.PRNGKey(1)
    )
    params = host_params(params)
    # Adam's eps is raised from 1e-8 so that its update is a smooth function of the gradient: with the
    # default, a gradient of float-noise size (1e-9) moves a parameter by up to lr, whichever its sign. Here
    # float noise in the gradients moves parameters by about that noise, so the comparison can be tight.
    hp = TrainHParams(
        learning_rate=1e-3, batch_size=8, micro_batch_size=4, warmup_ratio=0.0, seq_multiple=8, adam_eps=1e-3
    )
    batch = collate(_examples(8), hp)
    if lora:  # make adapters non-zero so their gradients flow through both factors
        params = jax.tree_util.tree_map_with_path(
            lambda p, x: x + 0.01 if p[-1].key == "lora_b" else x, params
        )
    single_metrics, single_params = _run_two_steps(cfg, params, _one_device_mesh(), hp, batch)
    mesh = parallel.make_mesh((2, 2, 2))
    sharded_metrics, sharded_params = _run_two_steps(cfg, params, mesh, hp, batch)
    for a, b in zip(single_metrics, sharded_metrics):
        assert abs(float(a["loss"]) - float(b["loss"])) <= 1e-5
        assert abs(float(a["grad_norm"]) - float(b["grad_norm"])) <= 1e-5 * max(1.0, float(a["grad_norm"]))
    assert float(sharded_metrics[1]["loss"]) < float(
        sharded_metrics[0]["loss"]
    )  # the first step changed something
    trainable = split_trainable(params, cfg)[0]
    moved = split_trainable(sharded_params, cfg)[0]
    for before, x, y in zip(
        jax.tree.leaves(trainable),
        jax.tree.leaves(split_trainable(single_params, cfg)[0]),
        jax.tree.leaves(moved),
    ):
        np.testing.assert_allclose(y, x, atol=1e-6)
        assert np.abs(y - before).max() > 1e-5  # every trainable leaf was updated, on both meshes
    if lora:  # LoRA trains only the adapters: every other weight comes back bit-identical
        from flax import traverse_util

        before, after = traverse_util.flatten_dict(params), traverse_util.flatten_dict(sharded_params)
        base = [k for k in before if k[-1] not in ("lora_a", "lora_b")]
        assert len(base) == len(before) - 2 * len(cfg.lora_targets)
        for k in base:
            np.testing.assert_array_equal(after[k], before[k], err_msg="/".join(k))
        assert all(np.abs(after[k] - before[k]).max() > 0 for k in before if k[-1] in ("lora_a", "lora_b"))


@pytest.mark.slow
@pytest.mark.multi_device
@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("lora", [0, 4], ids=["full", "lora"])
def test_gradients_equal_across_meshes(lora, kernels):
    """Loss and every gradient leaf: mesh (2,2,2) vs one device, within 1e-5, with 2-step accumulation."""
    cfg = tiny_config(lora_rank=lora, kernels=kernels)
    params = add_lora_params(
        init_params(cfg.replace(lora_rank=0), jax.random.PRNGKey(3)), cfg, jax.random.PRNGKey(4)
    )
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 0.01 if p[-1].key == "lora_b" else x, host_params(params)
    )
    results = loss_and_grads_on_meshes(cfg, params, _examples(8, seed=5))
    assert abs(results[0][0] - results[1][0]) <= 1e-5
    for a, b in zip(jax.tree.leaves(results[0][1]), jax.tree.leaves(results[1][1])):
        np.testing.assert_allclose(a, b, atol=1e-5)


def loss_and_grads_on_meshes(cfg, params, examples):
    """(loss, gradients on the host) for one batch of 8 in two accumulation steps, on one device and on mesh
    (2,2,2)."""
    from llm2llm_jax.student.step import loss_and_grads

    hp = TrainHParams(batch_size=8, micro_batch_size=4, seq_multiple=8)
    batch = collate(examples, hp)
    results = []
    for mesh in (_one_device_mesh(), parallel.make_mesh((2, 2, 2))):
        trainer = Trainer(cfg, hp, mesh, total_steps=1)
        trainable, frozen = split_trainable(params, cfg)
        trainable = parallel.place(trainable, trainer.trainable_shardings)
        frozen = parallel.place(frozen, trainer.frozen_shardings) if frozen else {}
        with jax.set_mesh(mesh):
            fn = jax.jit(lambda t, f, b: loss_and_grads(t, f, cfg, b))
            loss, grads, _ = fn(trainable, frozen, trainer.place_batch(batch))
        results.append((float(loss), host_params(grads)))
    return results


def _prefixed_examples(n=8, prefix_len=10, seed=7):
    """Examples whose prompts all begin with the same `prefix_len` tokens (a task's instruction)."""
    rs = np.random.RandomState(seed)
    prefix = list(rs.randint(3, 256, prefix_len))
    return [
        Example(
            prefix + list(rs.randint(3, 256, rs.randint(1, 9))),
            list(rs.randint(3, 256, rs.randint(1, 6))) + [2],
        )
        for _ in range(n)
    ]


def test_the_shared_prefix_is_every_prompts_start_rounded_down():
    from llm2llm_jax.student.batching import split_shared_prefix

    ex = _prefixed_examples(prefix_len=10)
    prefix, rest = split_shared_prefix(ex, 4)
    assert prefix == tuple(ex[0].prompt_ids[:8]) and all(len(r.prompt_ids) >= 1 for r in rest)
    assert all(list(prefix) + list(r.prompt_ids) == list(e.prompt_ids) for r, e in zip(rest, ex))
    assert split_shared_prefix(ex, 1)[0] == tuple(ex[0].prompt_ids[:10])  # where the prompts start to differ
    # a prompt that is the prefix itself keeps its last token: it predicts the first target
    short = [Example(ex[0].prompt_ids[:5], [9, 2])] + ex
    assert len(split_shared_prefix(short, 1)[0]) == 4
    assert split_shared_prefix([Example([5], [2]), Example([6], [2])], 1) == (
        (),
        [Example([5], [2]), Example([6], [2])],
    )


@pytest.mark.slow
@pytest.mark.parametrize("scan", [False, True], ids=["unrolled", "scan"])
@pytest.mark.parametrize("kernels", KERNELS)
def test_a_shared_prefix_read_once_gives_the_loss_and_gradients_of_the_whole_rows(kernels, scan):
    """The prefix every prompt begins with, run once into a KV cache and copied to the rows, gives the same
    target-token loss and every gradient as the whole rows (f32), LoRA adapters included."""
    from llm2llm_jax.student.batching import split_shared_prefix
    from llm2llm_jax.student.step import loss_and_grads

    cfg = tiny_config(kernels=kernels, scan_layers=scan, lora_rank=4)
    params = add_lora_params(
        init_params(cfg.replace(lora_rank=0), jax.random.PRNGKey(0)), cfg, jax.random.PRNGKey(1)
    )
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 0.01 if p[-1].key == "lora_b" else x, host_params(params)
    )
    merged, full_cfg = merge_lora(params, cfg)
    hp = TrainHParams(batch_size=8, micro_batch_size=4, seq_multiple=8)
    examples = _prefixed_examples()
    prefix, rest = split_shared_prefix(examples, 4)
    assert len(prefix) == 8
    whole = collate(examples, hp)
    shared = dict(collate(rest, hp), prefix_ids=np.asarray(prefix, np.int32))
    assert shared["input_ids"].shape[-1] < whole["input_ids"].shape[-1]
    for c, p in ((full_cfg, merged), (cfg, params)):
        trainable, frozen = split_trainable(p, c)
        fn = jax.jit(lambda t, f, b, c=c: loss_and_grads(t, f, c, b))
        loss_a, grads_a, n_a = fn(trainable, frozen, {k: jnp.asarray(v) for k, v in whole.items()})
        loss_b, grads_b, n_b = fn(trainable, frozen, {k: jnp.asarray(v) for k, v in shared.items()})
        assert float(n_a) == float(n_b) > 0
        assert abs(float(loss_a) - float(loss_b)) <= 1e-5
        for a, b in zip(jax.tree.leaves(grads_a), jax.tree.leaves(grads_b)):
            np.testing.assert_allclose(a, b, atol=1e-5 * max(1.0, float(np.abs(a).max())))


@pytest.mark.slow
@pytest.mark.multi_device
def test_a_shared_prefix_on_the_mesh_equals_one_device():
    """The prefix replicated, the rows split over mesh (2,2,2): loss and gradients as on one device."""
    from llm2llm_jax.student.batching import split_shared_prefix
    from llm2llm_jax.student.step import loss_and_grads

    cfg = tiny_config(kernels="cpu")
    params = host_params(init_params(cfg, jax.random.PRNGKey(2)))
    hp = TrainHParams(batch_size=8, micro_batch_size=4, seq_multiple=8)
    prefix, rest = split_shared_prefix(_prefixed_examples(seed=3), 4)
    batch = dict(collate(rest, hp), prefix_ids=np.asarray(prefix, np.int32))
    results = []
    for mesh in (_one_device_mesh(), parallel.make_mesh((2, 2, 2))):
        trainer = Trainer(cfg, hp, mesh, total_steps=1)
        trainable = parallel.place(params, trainer.trainable_shardings)
        with jax.set_mesh(mesh):
            loss, grads, _ = jax.jit(lambda t, b: loss_and_grads(t, {}, cfg, b))(
                trainable, trainer.place_batch(batch)
            )
        results.append((float(loss), host_params(grads)))
    assert abs(results[0][0] - results[1][0]) <= 1e-5
    for a, b in zip(jax.tree.leaves(results[0][1]), jax.tree.leaves(results[1][1])):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("kernels", KERNELS)
def test_loss_covers_exactly_the_target_tokens(kernels):
    """The LM head runs only at target positions, yet loss and gradients equal the full-logits loss
    over target tokens; prompt and padding tokens contribute nothing."""
    from llm2llm_jax.model.llama import forward

    cfg = tiny_config(kernels=kernels)
    params = init_params(cfg, jax.random.PRNGKey(0))
    hp = TrainHParams(batch_size=2, seq_multiple=16)
    ex = [Example([5, 6, 7, 8], [9, 10, 2]), Example([11, 12], [13, 2])]
    b = {k: jnp.asarray(v[0]) for k, v in collate(ex, hp).items()}
    # row 0: positions 3..5 predict 9, 10, 2; row 1: positions 1..2 predict 13, 2; K rounds 3 up to 8
    assert b["target_positions"].shape == (2, 8)
    np.testing.assert_array_equal(b["target_positions"][0, :3], [3, 4, 5])
    np.testing.assert_array_equal(b["target_mask"].sum(-1), [3, 2])
    predicting = {0: [3, 4, 5], 1: [1, 2]}

    def reference(p):  # full logits, then pick the target-predicting positions by hand
        logp = jax.nn.log_softmax(forward(cfg, p, b["input_ids"], b["attention_mask"]), axis=-1)
        return -sum(logp[r, t, b["input_ids"][r, t + 1]] for r, ts in predicting.items() for t in ts)

    def ours(p):
        return token_loss(
            p, cfg, b["input_ids"], b["attention_mask"], b["target_positions"], b["target_mask"]
        )

    (total, count), g = jax.jit(jax.value_and_grad(ours, has_aux=True))(params)
    ref_total, ref_g = jax.jit(jax.value_and_grad(reference))(params)
    assert int(count) == 5
    assert abs(float(total) - float(ref_total)) <= 1e-5 * abs(float(ref_total))
    for x, y in zip(jax.tree.leaves(g), jax.tree.leaves(ref_g)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-5)
    g_embed = g["embed_tokens"]["embedding"]
    assert float(jnp.abs(g_embed[0]).max()) == 0.0  # id 0 only ever sits in (right) padding
    assert float(jnp.abs(g_embed[9]).max()) > 0.0
    # A loss over every next token (prompt included) is a different number: the masking matters.
    logp = jax.nn.log_softmax(forward(cfg, params, b["input_ids"], b["attention_mask"]), axis=-1)
    all_tokens = -sum(logp[0, t, b["input_ids"][0, t + 1]] for t in range(6)) - sum(
        logp[1, t, b["input_ids"][1, t + 1]] for t in range(3)
    )
    assert abs(float(all_tokens) - float(total)) > 1.0


def test_truncated_and_promptless_rows():
    """A prompt longer than max_length leaves no targets; without a prompt the first token is not
    predicted."""
    hp = TrainHParams(batch_size=2, seq_multiple=8, max_length=8)
    batch = collate([Example(list(range(3, 13)), [4, 2]), Example([], [7, 8, 2])], hp)
    assert batch["input_ids"].shape == (1, 2, 8)
    np.testing.assert_array_equal(batch["target_mask"][0].sum(-1), [0, 2])
    np.testing.assert_array_equal(batch["target_positions"][0, 1, :2], [0, 1])


@pytest.mark.slow
def test_tiny_model_overfits():
    cfg = tiny_config()
    params = host_params(init_params(cfg, jax.random.PRNGKey(0)))
    hp = TrainHParams(
        learning_rate=3e-3, batch_size=8, epochs=150, warmup_ratio=0.0, seq_multiple=8, max_grad_norm=1.0
    )
    examples = _examples(8, seed=1)
    trainer = Trainer(cfg, hp, parallel.make_mesh((1, -1, 1)), total_steps=150)  # every device, one GPU too
    trainer.init_state(params)
    history = trainer.fit(examples, progress=False)
    assert history[0]["loss"] > 4.0
    assert history[-1]["loss"] < 0.05, history[-1]


def test_length_bucketing_keeps_padding_low():
    rs = np.random.RandomState(0)
    examples = [Example(list(range(3, 3 + n)), [4, 2]) for n in rs.randint(4, 200, 512)]
    hp = TrainHParams(batch_size=16, seq_multiple=8, max_length=512)
    bucketed = padding_fraction(make_batches(examples, hp, np.random.default_rng(0)))
    naive = padding_fraction(make_batches(examples, hp, np.random.default_rng(0), bucket_batches=1))
    assert bucketed < 0.1 and naive > 0.3, (bucketed, naive)
    # every example appears exactly once per epoch
    seen = sum(int(b["target_mask"].sum()) for b in make_batches(examples, hp, np.random.default_rng(1)))
    assert seen == 2 * len(examples)


def test_batches_are_shuffled_across_length_buckets():
    """Bucketing sorts by length inside a group, but the batches of a group come in shuffled order, and a
    different rng state (the next epoch) gives another order: training never sees lengths in sequence."""
    rs = np.random.RandomState(0)
    examples = [Example(list(range(3, 3 + n)), [4, 2]) for n in rs.randint(4, 200, 256)]
    hp = TrainHParams(batch_size=16, seq_multiple=8, max_length=512)
    rng = np.random.default_rng(0)
    epochs = [[b["input_ids"].shape[-1] for b in make_batches(examples, hp, rng)] for _ in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) and epochs[0] != epochs[1]
    assert epochs[0] != sorted(epochs[0]) and epochs[0] != sorted(epochs[0], reverse=True)


@pytest.mark.parametrize("kernels", KERNELS)
def test_lora_merge_equals_adapted_model(kernels):
    from llm2llm_jax.model.llama import forward

    cfg = tiny_config(lora_rank=4, kernels=kernels)
    params = add_lora_params(
        init_params(cfg.replace(lora_rank=0), jax.random.PRNGKey(0)), cfg, jax.random.PRNGKey(1)
    )
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 0.05 if p[-1].key == "lora_b" else x, host_params(params)
    )
    ids = jnp.asarray(np.random.RandomState(0).randint(3, 256, (2, 10)))
    adapted = forward(cfg, params, ids)
    merged, plain_cfg = merge_lora(params, cfg)
    assert plain_cfg.lora_rank == 0
    np.testing.assert_allclose(np.asarray(forward(plain_cfg, merged, ids)), np.asarray(adapted), atol=1e-5)
    assert (
        np.abs(
            np.asarray(forward(plain_cfg, split_trainable(params, cfg)[1], ids)) - np.asarray(adapted)
        ).max()
        > 1e-3
    )


def _bytes_on_disk(directory) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())


def _array_bytes(tree) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def test_checkpoints_are_written_uncompressed_and_compressed_ones_restore(tmp_path):
    """A training checkpoint and the kept student hold every array's bytes (a fresh state's Adam moments and
    a tree of zeros would shrink to almost nothing compressed), and a checkpoint written compressed, as
    earlier versions wrote them, restores to the same state."""
    import orbax.checkpoint as ocp

    from llm2llm_jax.student import kept

    cfg = tiny_config()
    params = host_params(init_params(cfg, jax.random.PRNGKey(0)))
    hp = TrainHParams(learning_rate=1e-3, batch_size=8, warmup_ratio=0.0, seq_multiple=8)
    mesh = parallel.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    trainer = Trainer(cfg, hp, mesh, total_steps=10, checkpoint_dir=str(tmp_path / "ckpt"))
    trainer.init_state(params)  # the moments are all zeros
    trainer.save(wait=True)
    assert _bytes_on_disk(tmp_path / "ckpt") >= _array_bytes(trainer.state)
    zeros = jax.tree.map(np.zeros_like, params)
    kept.keep(str(tmp_path / "kept"), 0, zeros)
    assert _bytes_on_disk(tmp_path / "kept") >= _array_bytes(zeros)
    for x in jax.tree.leaves(kept.restore(str(tmp_path / "kept"), jax.tree.map(np.ones_like, params))):
        assert not x.any()

    trainer.step(collate(_examples(8), hp))
    trained = host_params(trainer.state)
    trainer.close()
    old = ocp.CheckpointManager(str(tmp_path / "old"), options=ocp.CheckpointManagerOptions())
    old.save(
        1, args=ocp.args.Composite(state=ocp.args.StandardSave(trained), history=ocp.args.JsonSave([{}]))
    )
    old.wait_until_finished()
    old.close()
    assert _bytes_on_disk(tmp_path / "old") < _array_bytes(trained)  # zstd did write it
    resumed = Trainer(cfg, hp, mesh, total_steps=10, checkpoint_dir=str(tmp_path / "old"))
    resumed.init_state(params)
    assert resumed.restore() == 1
    for x, y in zip(jax.tree.leaves(host_params(resumed.state)), jax.tree.leaves(trained)):
        np.testing.assert_array_equal(x, y)
    resumed.close()


@pytest.mark.slow
@pytest.mark.multi_device
def test_orbax_restore_onto_a_different_mesh(tmp_path):
    cfg = tiny_config()
    params = host_params(init_params(cfg, jax.random.PRNGKey(0)))
    hp = TrainHParams(learning_rate=1e-3, batch_size=8, warmup_ratio=0.0, seq_multiple=8)
    batch = collate(_examples(8), hp)
    a = Trainer(cfg, hp, parallel.make_mesh((2, 2, 2)), total_steps=10, checkpoint_dir=str(tmp_path / "ckpt"))
    a.init_state(params)
    a.step(batch)
    a.save(wait=True)
    saved = host_params(a.state)
    expected_next = float(a.step(batch)["loss"])
    a.close()

    b = Trainer(cfg, hp, parallel.make_mesh((1, 8, 1)), total_steps=10, checkpoint_dir=str(tmp_path / "ckpt"))
    b.init_state(params)
    assert b.restore() == 1
    restored = host_params(b.state["params"])
    for x, y in zip(jax.tree.leaves(restored), jax.tree.leaves(saved["params"])):
        np.testing.assert_array_equal(x, y)  # bit-identical params on the new mesh
    assert b.state["params"]["layers"]["mlp"]["up_proj"]["kernel"].sharding.spec != saved_sharding_spec(
        cfg, parallel.make_mesh((2, 2, 2))
    )
    b_next = float(b.step(batch)["loss"])
    assert b_next == pytest.approx(expected_next, abs=1e-6)
    b.close()


def saved_sharding_spec(cfg, mesh):
    t = Trainer(cfg, TrainHParams(), mesh, total_steps=1)
    return t.param_shardings["layers"]["mlp"]["up_proj"]["kernel"].spec


@pytest.mark.multi_device
def test_mesh_shape_errors_and_unmatched_rule():
    import flax.linen as nn

    with pytest.raises(parallel.ShardingError, match="needs 12 devices"):
        parallel.make_mesh((2, 3, 2))
    assert parallel.make_mesh((2, -1, 1)).shape["fsdp"] == 4
    with pytest.raises(parallel.ShardingError, match="no partition rule"):
        parallel.param_shardings(
            {"w": nn.LogicallyPartitioned(jnp.zeros((4, 4)), ("embed", "mystery"))},
            parallel.make_mesh((1, -1, 1)),
        )
    with pytest.raises(parallel.ShardingError, match="no logical axis names"):
        parallel.param_shardings({"w": jnp.zeros((4, 4))}, parallel.make_mesh((1, -1, 1)))


@pytest.mark.multi_device
def test_optimizer_moments_are_sharded_like_params():
    cfg = tiny_config()
    trainer = Trainer(cfg, TrainHParams(), parallel.make_mesh((1, 8, 1)), total_steps=10)
    trainer.init_state(host_params(init_params(cfg, jax.random.PRNGKey(0))))
    param_specs = [x.sharding.spec for x in jax.tree.leaves(trainer.state["params"])]
    adam = trainer.state["opt_state"][1][0]  # chain(clip, adamw) -> adamw's ScaleByAdamState
    for moments in (adam.mu, adam.nu):
        assert [x.sharding.spec for x in jax.tree.leaves(moments)] == param_specs
    assert any("fsdp" in tuple(spec) for spec in param_specs)  # the params themselves are FSDP-sharded


# ---------------------------------------------------------------------------- the recipe against written-out
# references
def _paper_schedule(peak, warmup, total):
    """Linear warmup from 0, then cosine decay to 0 at `total`, written out (the paper's recipe)."""

    def lr(step):
        step = jnp.asarray(step, jnp.float32)
        rising = peak * step / max(warmup, 1)
        falling = (
            peak * 0.5 * (1 + jnp.cos(jnp.pi * jnp.clip(step - warmup, 0, total - warmup) / (total - warmup)))
        )
        return jnp.where(step < warmup, rising, falling)

    return lr


def test_learning_rate_warms_up_then_decays_by_cosine_to_zero():
    from llm2llm_jax.student.recipe import learning_rate_schedule

    hp = TrainHParams(learning_rate=2e-5, warmup_ratio=0.03)
    schedule = learning_rate_schedule(hp, 100)  # 3 warmup steps
    got = np.array([float(schedule(s)) for s in range(101)])
    want = np.array([float(_paper_schedule(2e-5, 3, 100)(s)) for s in range(101)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-12)
    assert got[0] == 0.0 and got[3] == pytest.approx(2e-5) and got[100] == pytest.approx(0.0, abs=1e-12)
    assert got[3 + 97 // 2] == pytest.approx(1e-5, rel=0.02)  # half the peak halfway through the decay
    assert np.all(np.diff(got[3:]) < 0)  # strictly decreasing after warmup


def test_optimizer_equals_an_explicit_optax_chain():
    """make_optimizer, with the step's rate applied as train_step applies it, against the recipe built here
    from optax's parts and the written-out schedule: clip by global norm, Adam moments, decoupled weight
    decay, minus the learning rate; and bit for bit against optax applying the same schedule itself (after
    the same clipping). Gradients of very different sizes (some clipped, some not) and non-default betas, eps
    and decay, over a whole run."""
    import optax

    from llm2llm_jax.student.recipe import (
        at_learning_rate,
        clip_by_global_norm,
        learning_rate_schedule,
        make_optimizer,
    )

    total = 12
    hp = TrainHParams(
        learning_rate=1e-2,
        warmup_ratio=0.25,
        weight_decay=0.1,
        max_grad_norm=0.5,
        adam_b1=0.8,
        adam_b2=0.95,
        adam_eps=1e-6,
    )
    reference = optax.chain(
        optax.clip_by_global_norm(0.5),
        optax.scale_by_adam(b1=0.8, b2=0.95, eps=1e-6),
        optax.add_decayed_weights(0.1),
        optax.scale_by_learning_rate(_paper_schedule(1e-2, 3, total)),
    )
    ours, schedule = make_optimizer(hp), learning_rate_schedule(hp, total)
    scheduled_inside = optax.chain(
        clip_by_global_norm(0.5), optax.adamw(schedule, b1=0.8, b2=0.95, eps=1e-6, weight_decay=0.1)
    )
    rs = np.random.RandomState(0)
    params = {"w": jnp.asarray(rs.randn(5, 3), jnp.float32), "b": jnp.asarray(rs.randn(3), jnp.float32)}
    ref_state, our_state, inside_state = (
        reference.init(params),
        ours.init(params),
        scheduled_inside.init(params),
    )
    ref_params = our_params = params
    norms = []
    for step in range(total):
        scale = [0.01, 3.0, 0.2, 10.0][step % 4]  # below and above the clipping norm
        grads = jax.tree.map(lambda p, s=scale: jnp.asarray(rs.randn(*p.shape) * s, jnp.float32), params)
        norms.append(float(optax.tree.norm(grads)))
        ref_updates, ref_state = reference.update(grads, ref_state, ref_params)
        our_updates, our_state = ours.update(grads, our_state, our_params)
        our_updates = at_learning_rate(our_updates, np.float32(schedule(jnp.int32(step))))
        inside_updates, inside_state = scheduled_inside.update(grads, inside_state, our_params)
        for a, b, c in zip(
            jax.tree.leaves(our_updates), jax.tree.leaves(ref_updates), jax.tree.leaves(inside_updates)
        ):
            np.testing.assert_allclose(
                np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-9, err_msg=f"step {step}"
            )
            np.testing.assert_array_equal(np.asarray(a), np.asarray(c), err_msg=f"step {step}")
        ref_params = optax.apply_updates(ref_params, ref_updates)
        our_params = optax.apply_updates(our_params, our_updates)
    assert min(norms) < 0.5 < max(norms)
    assert float(jnp.abs(our_params["w"] - params["w"]).max()) > 1e-3  # the run moved the parameters


def test_clipping_equals_optaxs_and_the_update_writes_each_weight_sized_array_once():
    """The recipe's clipping gives optax.clip_by_global_norm's gradients (the same below the norm, within a
    rounding above it), and the compiled update (clipping, AdamW, the new weights) writes three arrays the
    size of each weight: the weight and its two moments, no clipped gradient between them."""
    import optax

    from llm2llm_jax.student.recipe import clip_by_global_norm, make_optimizer

    rs = np.random.RandomState(0)
    grads = {"w": jnp.asarray(rs.randn(256, 384), jnp.float32), "b": jnp.asarray(rs.randn(384), jnp.float32)}
    norm = float(optax.tree.norm(grads))
    for max_norm in (2 * norm, norm / 3):
        ours, _ = clip_by_global_norm(max_norm).update(grads, optax.EmptyState())
        theirs, _ = optax.clip_by_global_norm(max_norm).update(grads, optax.EmptyState())
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
            if max_norm > norm:
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            else:
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
        assert float(optax.tree.norm(ours)) == pytest.approx(min(norm, max_norm), rel=1e-6)

    optimizer = make_optimizer(TrainHParams(max_grad_norm=1.0, weight_decay=0.1))
    params = jax.tree.map(jnp.ones_like, grads)

    def update(g, state, p):
        updates, state = optimizer.update(g, state, p)
        return optax.apply_updates(p, updates), state

    hlo = (
        jax.jit(update, donate_argnums=(1, 2))
        .lower(grads, optimizer.init(params), params)
        .compile()
        .as_text()
    )
    written = [
        line
        for line in hlo.splitlines()
        if line.strip().startswith("%") and "= f32[256,384]" in line and " fusion(" in line
    ]
    assert len(written) == 3, written


@pytest.mark.slow
def test_trainer_steps_follow_the_schedule_with_one_compiled_step_per_recipe():
    """Trainer steps equal plain optax (clip + AdamW on the warmup-cosine schedule) applied to the same
    gradients, for two recipes of different lengths and weight decays trained one after the other in one
    process: the compiled step is shared where it may be (any length) and not where it may not (another
    optimizer setting)."""
    import optax

    from llm2llm_jax.student.recipe import learning_rate_schedule
    from llm2llm_jax.student.step import loss_and_grads

    cfg = tiny_config()
    params = host_params(init_params(cfg, jax.random.PRNGKey(0)))
    mesh = _one_device_mesh()
    batches = [collate(_examples(8, seed=s), TrainHParams(batch_size=8, seq_multiple=32)) for s in range(3)]
    grads_of = jax.jit(lambda p, b: loss_and_grads(p, {}, cfg, b)[1])  # one shape: every row fits in 32
    for total, decay in ((6, 0.0), (9, 0.0), (9, 0.3)):
        hp = TrainHParams(
            learning_rate=1e-2, batch_size=8, warmup_ratio=0.2, weight_decay=decay, seq_multiple=8
        )
        trainer = Trainer(cfg, hp, mesh, total_steps=total)
        trainer.init_state(params)
        for batch in batches:
            trainer.step(batch)
        reference = optax.chain(
            optax.clip_by_global_norm(hp.max_grad_norm),
            optax.adamw(learning_rate_schedule(hp, total), weight_decay=decay),
        )
        want = jax.tree.map(jnp.asarray, params)
        opt_state = reference.init(want)
        for batch in batches:
            grads = grads_of(want, jax.tree.map(jnp.asarray, batch))
            updates, opt_state = reference.update(grads, opt_state, want)
            want = optax.apply_updates(want, updates)
        got = host_params(trainer.params())
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(
                a, np.asarray(b), rtol=1e-5, atol=1e-6, err_msg=f"total {total}, decay {decay}"
            )
        assert float(np.abs(got["lm_head"]["kernel"] - params["lm_head"]["kernel"]).max()) > 1e-4


@pytest.mark.slow
def test_accumulation_weights_micro_batches_by_target_tokens():
    """Four micro-batches of two rows give the loss and gradients of one batch of eight: every target token
    counts once, however the rows fall into micro-batches (rows hold 1 to 12 target tokens)."""
    from llm2llm_jax.student.step import loss_and_grads

    cfg = tiny_config()
    params = init_params(cfg, jax.random.PRNGKey(0))
    rs = np.random.RandomState(7)
    examples = [
        Example(list(rs.randint(3, 256, 6)), list(rs.randint(3, 256, n))) for n in (1, 12, 2, 9, 1, 1, 12, 3)
    ]
    results = []
    for micro in (8, 2):
        hp = TrainHParams(batch_size=8, micro_batch_size=micro, seq_multiple=8)
        batch = {k: jnp.asarray(v) for k, v in collate(examples, hp).items()}
        assert batch["input_ids"].shape[:2] == (8 // micro, micro)
        loss, grads, count = jax.jit(lambda p, b: loss_and_grads(p, {}, cfg, b))(params, batch)
        results.append((float(loss), grads, float(count)))
    (loss_one, grads_one, count_one), (loss_four, grads_four, count_four) = results
    assert count_one == count_four == 41
    assert loss_four == pytest.approx(loss_one, rel=1e-6)
    for a, b in zip(jax.tree.leaves(grads_four), jax.tree.leaves(grads_one)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-7)


def test_fresh_adapters_leave_the_model_unchanged():
    from llm2llm_jax.model.llama import forward

    cfg = tiny_config(lora_rank=4)
    base = init_params(cfg.replace(lora_rank=0), jax.random.PRNGKey(0))
    adapted = add_lora_params(base, cfg, jax.random.PRNGKey(1))
    lora_a = adapted["layers"]["mlp"]["up_proj"]["lora_a"]
    assert float(np.abs(lora_a).max()) > 0  # A is random, B is zero
    ids = jnp.asarray(np.random.RandomState(0).randint(3, 256, (2, 10)))
    np.testing.assert_array_equal(
        np.asarray(forward(cfg, adapted, ids)), np.asarray(forward(cfg.replace(lora_rank=0), base, ids))
    )


def test_lora_matches_peft(tmp_path):
    """LoRA as PEFT defines it (y = x W + (alpha / r) x A B on every targeted projection): the same logits
    as transformers + PEFT with the same adapter weights, at rank 4 and alpha 8 (scale 2)."""
    import torch
    from conftest import make_hf_llama, random_batch, torch_logits
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    from llm2llm_jax.model.llama import forward
    from llm2llm_jax.model.weights import load_hf_checkpoint

    path, ref = make_hf_llama(tmp_path)
    cfg, params = load_hf_checkpoint(path, scan_layers=False, lora_rank=4, lora_alpha=8.0)
    params = host_params(add_lora_params(params, cfg, jax.random.PRNGKey(0)))
    rs = np.random.RandomState(1)
    params = jax.tree_util.tree_map_with_path(  # non-zero B, so the adapters change the output
        lambda p, x: (rs.randn(*x.shape) * 0.1).astype(x.dtype) if p[-1].key == "lora_b" else x, params
    )
    peft_model = get_peft_model(
        ref, PeftLoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=list(cfg.lora_targets))
    )
    with torch.no_grad():
        for i, layer in enumerate(peft_model.base_model.model.model.layers):
            for group in ("self_attn", "mlp"):
                for name, ours in params[f"layers_{i}"][group].items():
                    module = getattr(getattr(layer, group), name)
                    module.lora_A["default"].weight.copy_(torch.tensor(np.asarray(ours["lora_a"]).T))
                    module.lora_B["default"].weight.copy_(torch.tensor(np.asarray(ours["lora_b"]).T))
    ids, mask = random_batch(cfg.vocab_size, length=16)
    want = torch_logits(peft_model, ids, mask)
    got = np.asarray(forward(cfg, params, jnp.asarray(ids), jnp.asarray(mask)))
    valid = mask.astype(bool)
    assert np.abs(got - want)[valid].max() <= 1e-4
    base = np.asarray(
        forward(
            cfg.replace(lora_rank=0), split_trainable(params, cfg)[1], jnp.asarray(ids), jnp.asarray(mask)
        )
    )
    assert np.abs(base - want)[valid].max() > 1e-2  # the adapters matter at this scale


@pytest.mark.multi_device
def test_fsdp_and_tensor_axes_split_every_large_parameter():
    """What each device holds: on a (1, 8, 1) mesh every matrix is split 8 ways along its embed axis and the
    batch 8 ways along its rows; on (1, 2, 4) the MLP and head axes split 4 ways and embed 2 ways."""
    cfg = tiny_config()  # embed 64, mlp 128, 4 x 16 query and 2 x 16 key/value features, vocab 256
    params = host_params(init_params(cfg, jax.random.PRNGKey(0)))
    layers = cfg.num_hidden_layers
    expected = {
        (1, 8, 1): {
            ("embed_tokens", "embedding"): (256, 8),
            ("layers", "mlp", "up_proj", "kernel"): (layers, 8, 128),
            ("layers", "mlp", "down_proj", "kernel"): (layers, 128, 8),
            ("layers", "self_attn", "k_proj", "kernel"): (layers, 8, 32),
            ("layers", "input_layernorm", "weight"): (layers, 64),
        },
        (1, 2, 4): {
            ("embed_tokens", "embedding"): (64, 32),
            ("layers", "mlp", "up_proj", "kernel"): (layers, 32, 32),
            ("layers", "self_attn", "q_proj", "kernel"): (layers, 32, 16),
            ("layers", "self_attn", "o_proj", "kernel"): (layers, 16, 32),
        },
    }
    for shape, shards in expected.items():
        trainer = Trainer(
            cfg, TrainHParams(batch_size=16, seq_multiple=8), parallel.make_mesh(shape), total_steps=1
        )
        trainer.init_state(params)
        placed = trainer.state["params"]
        for path, shard in shards.items():
            leaf = placed
            for key in path:
                leaf = leaf[key]
            assert {s.data.shape for s in leaf.addressable_shards} == {shard}, (shape, path)
        if shape == (1, 8, 1):
            total = sum(x.size for x in jax.tree.leaves(params))
            on_device_0 = sum(x.addressable_shards[0].data.size for x in jax.tree.leaves(placed))
            norms = 2 * layers * 64 + 64  # replicated on purpose: the norm axis has no mesh rule
            assert on_device_0 == (total - norms) // 8 + norms
            batch = trainer.place_batch(collate(_examples(16), trainer.hp))
            assert {s.data.shape[1] for s in batch["input_ids"].addressable_shards} == {2}  # 16 rows over 8


@pytest.mark.multi_device
def test_uneven_dimensions_are_replicated_with_a_warning(caplog):
    import logging

    mesh = parallel.make_mesh((1, 4, 2))
    with caplog.at_level(logging.WARNING, logger="llm2llm_jax.common.parallel"):
        spec = parallel.logical_to_spec(("embed", "mlp"), (6, 64), mesh, what="w")
    assert spec == jax.sharding.PartitionSpec(None, "tensor")
    assert "w: dimension 6 (embed) does not divide over mesh axes" in caplog.text


@pytest.mark.slow
def test_fit_resumed_from_a_checkpoint_equals_an_uninterrupted_fit(tmp_path):
    """Interrupted after step 4 with a checkpoint at step 3, a new Trainer restores step 3 and continues at
    step 4: the final parameters equal those of an uninterrupted fit."""
    cfg = tiny_config()
    params = host_params(init_params(cfg, jax.random.PRNGKey(0)))
    # One batch shape for every step (rows of at most 20 tokens, 8 targets): one compilation per Trainer.
    hp = TrainHParams(learning_rate=1e-3, batch_size=4, epochs=2, warmup_ratio=0.0, seq_multiple=32)
    examples = _examples(16, seed=3)  # 4 steps per epoch, 8 in all
    mesh = _one_device_mesh()

    whole = Trainer(cfg, hp, mesh, total_steps=8)
    whole.init_state(params)
    whole_history = whole.fit(examples, progress=False)
    expected = host_params(whole.state["params"])

    class Interrupted(Exception):
        pass

    first = Trainer(cfg, hp, mesh, total_steps=8, checkpoint_dir=str(tmp_path / "ckpt"))
    first.init_state(params)
    real_step, calls = first.step, []

    def step(batch):
        calls.append(1)
        if len(calls) == 5:
            raise Interrupted
        return real_step(batch)

    first.step = step
    with pytest.raises(Interrupted):
        first.fit(examples, progress=False, checkpoint_every=3)
    first.close()

    second = Trainer(cfg, hp, mesh, total_steps=8, checkpoint_dir=str(tmp_path / "ckpt"))
    second.init_state(params)
    assert second.restore() == 3
    history = second.fit(examples, progress=False, start_step=3)
    assert len(history) == 5
    assert second.history == whole_history  # the 3 steps before the checkpoint came back with it
    for a, b in zip(jax.tree.leaves(host_params(second.state["params"])), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(a, b)
    second.close()


@pytest.mark.slow
def test_fit_fetches_metrics_in_groups_and_places_each_batch_a_step_ahead(monkeypatch):
    """The loop waits for the devices only when it fetches metrics (every FETCH_EVERY steps and at the end),
    and uploads the next batch before the current step's results are asked for; the steps, their metrics
    and order, and the trained weights equal a fit that fetches after every step."""
    from llm2llm_jax.student import train

    cfg = tiny_config()
    params = host_params(init_params(cfg, jax.random.PRNGKey(0)))
    hp = TrainHParams(learning_rate=1e-3, batch_size=4, epochs=5, warmup_ratio=0.2, seq_multiple=32)
    examples = _examples(16, seed=3)  # 4 steps per epoch, 20 in all

    def fit(fetch_every):
        monkeypatch.setattr(train, "FETCH_EVERY", fetch_every)
        trainer = Trainer(cfg, hp, _one_device_mesh(), total_steps=20)
        trainer.init_state(params)
        events, fetches = [], []
        real_place, real_step, real_get = trainer.place_batch, trainer.step, jax.device_get

        def place(batch):  # a batch from the host (the step is given it placed, and keeps it as it is)
            if isinstance(batch["input_ids"], np.ndarray):
                events.append("place")
            return real_place(batch)

        monkeypatch.setattr(trainer, "place_batch", place)
        monkeypatch.setattr(trainer, "step", lambda b: events.append("step") or real_step(b))

        def device_get(tree):
            fetches.append(len(jax.tree.leaves(tree)))
            return real_get(tree)

        monkeypatch.setattr(train.jax, "device_get", device_get)
        seen = []
        history = trainer.fit(examples, progress=False, on_step=lambda n, m: seen.append((n, m["loss"])))
        monkeypatch.setattr(train.jax, "device_get", real_get)
        return history, seen, events, fetches, host_params(trainer.params())

    history, seen, events, fetches, weights = fit(16)
    one_by_one, seen_1, _, fetches_1, weights_1 = fit(1)
    assert len(fetches) == 2 and len(fetches_1) == 20  # 16 steps' metrics at once, then the last 4
    assert history == one_by_one and seen == seen_1 and [n for n, _ in seen] == list(range(1, 21))
    # the first two batches are placed before the first step runs, and each step's successor before it
    assert events[:3] == ["place", "place", "step"] and events.count("place") == events.count("step") == 20
    for a, b in zip(jax.tree.leaves(weights), jax.tree.leaves(weights_1)):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------- epochs chosen by dev loss
def _dev_loss_setup(patience: int):
    """A tiny model, 16 training rows (4 steps an epoch, at most 8 epochs) and a dev set of training prompts
    with other targets: its loss falls for an epoch, then rises as the model learns the training targets."""
    cfg = tiny_config()
    params = host_params(init_params(cfg, jax.random.PRNGKey(0)))
    train = _examples(16, seed=3)
    rs = np.random.RandomState(7)
    dev = [Example(e.prompt_ids, list(rs.randint(3, 256, len(e.target_ids) - 1)) + [2]) for e in train[:8]]
    hp = TrainHParams(
        learning_rate=3e-3,
        batch_size=4,
        epochs=8,
        warmup_ratio=0.0,
        seq_multiple=32,
        epoch_selection="dev_loss",
        patience=patience,
    )
    return cfg, params, train, dev, hp


def _leaves_equal(a, b):
    for x, y in zip(jax.tree.leaves(host_params(a)), jax.tree.leaves(host_params(b)), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_epochs_chosen_by_dev_loss_keep_the_best_epochs_weights():
    from llm2llm_jax.student.step import best_epoch, dev_losses

    cfg, params, train, dev, hp = _dev_loss_setup(patience=0)
    mesh = _one_device_mesh()
    chosen = Trainer(cfg, hp, mesh, total_steps=32)
    chosen.init_state(params)
    chosen.fit(train, progress=False, dev_examples=dev)
    losses = dev_losses(chosen.history)
    best = best_epoch(losses)
    assert len(losses) == 8 and 0 < best < 7, losses  # the test needs a best epoch that is not the last
    assert losses[best] < losses[-1]

    # The same recipe stopped after the best epoch (the schedule of 8 epochs) has the kept weights.
    fixed = Trainer(
        cfg, dataclasses.replace(hp, epochs=best + 1, epoch_selection="fixed"), mesh, total_steps=32
    )
    fixed.init_state(params)
    fixed.fit(train, progress=False)
    _leaves_equal(chosen.params(), fixed.params())
    assert fixed.dev_loss(dev, 0) == pytest.approx(losses[best], rel=1e-6)

    # With patience 2 it stops two epochs after the best, with the same weights.
    patient = Trainer(cfg, dataclasses.replace(hp, patience=2), mesh, total_steps=32)
    patient.init_state(params)
    patient.fit(train, progress=False, dev_examples=dev)
    assert dev_losses(patient.history) == losses[: best + 3] and len(patient.history) == 4 * (best + 3)
    _leaves_equal(patient.params(), fixed.params())


@pytest.mark.slow
def test_the_dev_loss_is_the_mean_target_token_loss_of_every_row():
    cfg, params, train, dev, hp = _dev_loss_setup(patience=0)
    instruction = [5, 6, 7, 8, 9, 10, 11, 12]  # every dev prompt begins with it: a shared prefix
    dev = [Example(instruction + list(e.prompt_ids), e.target_ids) for e in dev]
    trainer = Trainer(cfg, hp, _one_device_mesh(), total_steps=1)
    trainer.init_state(params)
    total = count = 0.0
    for e in dev:  # one row at a time, no shared prefix, no padding
        ids = np.asarray([list(e.prompt_ids) + list(e.target_ids)], np.int32)
        positions = np.arange(len(e.prompt_ids) - 1, ids.shape[1] - 1, dtype=np.int32)[None]
        s, n = token_loss(params, cfg, ids, np.ones_like(ids), positions, np.ones_like(positions))
        total, count = total + float(s), count + float(n)
    assert trainer.dev_loss(dev, 0) == pytest.approx(total / count, rel=1e-5)


@pytest.mark.slow
def test_a_fit_choosing_epochs_resumed_from_a_checkpoint_equals_an_uninterrupted_one(tmp_path):
    """Interrupted at step 11, after the best epoch (its weights kept at step 8) and a checkpoint at step 9:
    the resumed fit restores the kept weights, stops where the whole one stopped, with the same weights; a
    fit resumed from its final checkpoint has nothing left to run."""
    cfg, params, train, dev, hp = _dev_loss_setup(patience=2)
    mesh = _one_device_mesh()
    whole = Trainer(cfg, hp, mesh, total_steps=32)
    whole.init_state(params)
    whole.fit(train, progress=False, dev_examples=dev)

    class Interrupted(Exception):
        pass

    def interrupt_at(step):
        def on_step(s, _):
            if s == step:
                raise Interrupted

        return on_step

    ckpt = str(tmp_path / "ckpt")
    first = Trainer(cfg, hp, mesh, total_steps=32, checkpoint_dir=ckpt)
    first.init_state(params)
    with pytest.raises(Interrupted):
        first.fit(train, progress=False, checkpoint_every=3, dev_examples=dev, on_step=interrupt_at(11))
    first.close()

    second = Trainer(cfg, hp, mesh, total_steps=32, checkpoint_dir=ckpt)
    second.init_state(params)
    assert second.restore() == 9 and second.kept is not None
    second.fit(train, progress=False, start_step=9, checkpoint_every=3, dev_examples=dev)
    assert second.history == whole.history
    _leaves_equal(second.params(), whole.params())
    second.save(wait=True)
    second.close()

    third = Trainer(cfg, hp, mesh, total_steps=32, checkpoint_dir=ckpt)
    third.init_state(params)
    stopped_at = third.restore()
    assert stopped_at == len(whole.history)
    assert third.fit(train, progress=False, start_step=stopped_at, dev_examples=dev) == []
    _leaves_equal(third.params(), whole.params())
    third.close()


class _Clock:
    """Seconds that advance only when told: what CheckpointPolicy reads as its clock."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_checkpoints_come_at_multiples_of_their_steps_once_their_minutes_have_passed(monkeypatch):
    from llm2llm_jax.student.checkpoint_policy import CheckpointPolicy

    clock = _Clock()
    monkeypatch.setattr(CheckpointPolicy, "clock", staticmethod(clock))
    policy = CheckpointPolicy(every=4, minutes=1.0)
    due = []
    for step in range(1, 25):
        clock.now += 10.0  # a step takes 10 s
        if policy.due(step):
            due.append(step)
            policy.saved()
    # 60 s first pass at step 6, but the next multiple of 4 is 8; then 60 s more by step 14: 16; then 24.
    assert due == [8, 16, 24]
    # minutes 0: every multiple of the steps; every 0: never, however long the wait
    steps_only, never = CheckpointPolicy(every=4, minutes=0.0), CheckpointPolicy(every=0, minutes=0.0)
    assert [s for s in range(1, 13) if steps_only.due(s)] == [4, 8, 12]
    clock.now += 3600.0
    assert not any(never.due(s) for s in range(1, 13))


@pytest.mark.slow
def test_a_fit_writes_mid_training_checkpoints_only_once_their_minutes_have_passed(tmp_path, monkeypatch):
    """The same fit with the same steps between checkpoints: minutes 0 writes them, minutes 1 (each step
    taking 10 s of the policy's clock) writes the one after a minute has passed."""
    from llm2llm_jax.student.checkpoint_policy import CheckpointPolicy

    cfg = tiny_config()
    params = host_params(init_params(cfg, jax.random.PRNGKey(0)))
    hp = TrainHParams(learning_rate=1e-3, batch_size=4, epochs=2, warmup_ratio=0.0, seq_multiple=32)
    examples = _examples(16, seed=3)  # 4 steps per epoch, 8 in all
    clock = _Clock()
    monkeypatch.setattr(CheckpointPolicy, "clock", staticmethod(clock))
    written = {}
    for minutes in (0.0, 1.0):
        trainer = Trainer(
            cfg,
            hp,
            _one_device_mesh(),
            total_steps=8,
            checkpoint_dir=str(tmp_path / str(minutes)),
            keep_checkpoints=8,
        )
        trainer.init_state(params)
        real_step = trainer.step

        def step(batch, real_step=real_step):
            clock.now += 10.0
            return real_step(batch)

        trainer.step = step
        trainer.fit(examples, progress=False, checkpoint_every=2, checkpoint_minutes=minutes)
        trainer.close()
        written[minutes] = list(trainer.checkpoints.all_steps())
    # step 6 is the first multiple of 2 a minute after the start; step 8 ends the fit (no mid-training one)
    assert written == {0.0: [2, 4, 6], 1.0: [6]}
