"""Training on a (2,2,2) mesh of 8 simulated CPU devices equals one device, with each kernel set; masking,
overfitting, LoRA, orbax."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm2llm_jax import parallel
from llm2llm_jax.model.config import tiny_config
from llm2llm_jax.model.llama import init_params
from llm2llm_jax.train import (Example, TrainHParams, Trainer, add_lora_params, collate, host_params, make_batches,
                               merge_lora, padding_fraction, split_trainable, token_loss)


def _examples(n=16, seed=0, vocab=256):
    rs = np.random.RandomState(seed)
    return [Example(prompt_ids=list(rs.randint(3, vocab, rs.randint(3, 12))),
                    target_ids=list(rs.randint(3, vocab, rs.randint(2, 8))) + [2]) for _ in range(n)]


def _one_device_mesh():
    return parallel.make_mesh((1, 1, 1), devices=jax.devices()[:1])


def _run_two_steps(cfg, params, mesh, hp, batch):
    trainer = Trainer(cfg, hp, mesh, total_steps=10)
    trainer.init_state(params)
    m1 = trainer.step(batch)
    m2 = trainer.step(batch)
    return [jax.device_get(m) for m in (m1, m2)], host_params(trainer.state["params"])


KERNELS = ["cpu", "xla"]


@pytest.mark.multi_device
@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("lora", [0, 4], ids=["full", "lora"])
def test_sharded_equals_single_device(lora, kernels):
    assert len(jax.devices()) == 8
    cfg = tiny_config(lora_rank=lora, kernels=kernels)
    params = add_lora_params(init_params(cfg.replace(lora_rank=0), jax.random.PRNGKey(0)), cfg, jax.random.PRNGKey(1))
    params = host_params(params)
    hp = TrainHParams(learning_rate=1e-3, batch_size=8, micro_batch_size=4, warmup_ratio=0.0, seq_multiple=8)
    batch = collate(_examples(8), hp)
    if lora:  # make adapters non-zero so their gradients flow through both factors
        params = jax.tree_util.tree_map_with_path(
            lambda p, x: x + 0.01 if p[-1].key == "lora_b" else x, params)
    single_metrics, single_params = _run_two_steps(cfg, params, _one_device_mesh(), hp, batch)
    mesh = parallel.make_mesh((2, 2, 2))
    sharded_metrics, sharded_params = _run_two_steps(cfg, params, mesh, hp, batch)
    for a, b in zip(single_metrics, sharded_metrics):
        assert abs(float(a["loss"]) - float(b["loss"])) <= 1e-5
        assert abs(float(a["grad_norm"]) - float(b["grad_norm"])) <= 1e-5 * max(1.0, float(a["grad_norm"]))
    # Adam divides by sqrt(v): for near-zero gradients the update is ~sign(g) * lr, so float noise of 1e-9 in g
    # can move a parameter by up to 2 * lr. Gradients themselves are compared at 1e-5 in the test below.
    for x, y in zip(jax.tree.leaves(single_params), jax.tree.leaves(sharded_params)):
        np.testing.assert_allclose(x, y, atol=2 * hp.learning_rate)
    if lora:  # LoRA trains only the adapters: the base weights come back bit-identical
        base_after = split_trainable(sharded_params, cfg)[1]
        base_before = split_trainable(params, cfg)[1]
        for x, y in zip(jax.tree.leaves(base_after), jax.tree.leaves(base_before)):
            np.testing.assert_array_equal(x, y)
        lora_after = split_trainable(sharded_params, cfg)[0]
        lora_before = split_trainable(params, cfg)[0]
        assert any(np.abs(x - y).max() > 0 for x, y in zip(jax.tree.leaves(lora_after), jax.tree.leaves(lora_before)))


@pytest.mark.multi_device
@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("lora", [0, 4], ids=["full", "lora"])
def test_gradients_equal_across_meshes(lora, kernels):
    """Loss and every gradient leaf: mesh (2,2,2) vs one device, within 1e-5, with 2-step accumulation."""
    from llm2llm_jax.train import loss_and_grads

    cfg = tiny_config(lora_rank=lora, kernels=kernels)
    params = add_lora_params(init_params(cfg.replace(lora_rank=0), jax.random.PRNGKey(3)), cfg, jax.random.PRNGKey(4))
    params = jax.tree_util.tree_map_with_path(lambda p, x: x + 0.01 if p[-1].key == "lora_b" else x,
                                              host_params(params))
    hp = TrainHParams(batch_size=8, micro_batch_size=4, seq_multiple=8)
    batch = collate(_examples(8, seed=5), hp)
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
    assert abs(results[0][0] - results[1][0]) <= 1e-5
    for a, b in zip(jax.tree.leaves(results[0][1]), jax.tree.leaves(results[1][1])):
        np.testing.assert_allclose(a, b, atol=1e-5)


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
        return token_loss(p, cfg, b["input_ids"], b["attention_mask"], b["target_positions"], b["target_mask"])

    (total, count), g = jax.value_and_grad(ours, has_aux=True)(params)
    ref_total, ref_g = jax.value_and_grad(reference)(params)
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
        logp[1, t, b["input_ids"][1, t + 1]] for t in range(3))
    assert abs(float(all_tokens) - float(total)) > 1.0


def test_truncated_and_promptless_rows():
    """A prompt longer than max_length leaves no targets; without a prompt the first token is not predicted."""
    hp = TrainHParams(batch_size=2, seq_multiple=8, max_length=8)
    batch = collate([Example(list(range(3, 13)), [4, 2]), Example([], [7, 8, 2])], hp)
    assert batch["input_ids"].shape == (1, 2, 8)
    np.testing.assert_array_equal(batch["target_mask"][0].sum(-1), [0, 2])
    np.testing.assert_array_equal(batch["target_positions"][0, 1, :2], [0, 1])


def test_tiny_model_overfits():
    cfg = tiny_config()
    params = host_params(init_params(cfg, jax.random.PRNGKey(0)))
    hp = TrainHParams(learning_rate=3e-3, batch_size=8, epochs=150, warmup_ratio=0.0, seq_multiple=8,
                      max_grad_norm=1.0)
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


@pytest.mark.parametrize("kernels", KERNELS)
def test_lora_merge_equals_adapted_model(kernels):
    from llm2llm_jax.model.llama import forward

    cfg = tiny_config(lora_rank=4, kernels=kernels)
    params = add_lora_params(init_params(cfg.replace(lora_rank=0), jax.random.PRNGKey(0)), cfg, jax.random.PRNGKey(1))
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 0.05 if p[-1].key == "lora_b" else x, host_params(params))
    ids = jnp.asarray(np.random.RandomState(0).randint(3, 256, (2, 10)))
    adapted = forward(cfg, params, ids)
    merged, plain_cfg = merge_lora(params, cfg)
    assert plain_cfg.lora_rank == 0
    np.testing.assert_allclose(np.asarray(forward(plain_cfg, merged, ids)), np.asarray(adapted), atol=1e-5)
    assert np.abs(np.asarray(forward(plain_cfg, split_trainable(params, cfg)[1], ids)) - np.asarray(adapted)).max() > 1e-3


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
    assert b.state["params"]["layers"]["mlp"]["up_proj"]["kernel"].sharding.spec != \
        saved_sharding_spec(cfg, parallel.make_mesh((2, 2, 2)))
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
        parallel.param_shardings({"w": nn.LogicallyPartitioned(jnp.zeros((4, 4)), ("embed", "mystery"))},
                                 parallel.make_mesh((1, -1, 1)))
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
    assert any(spec != jax.sharding.PartitionSpec() for spec in param_specs)
