"""Qwen2, Qwen3, Mistral and Gemma 3 vs transformers' PyTorch models on tiny random configs: logits, every
gradient, greedy decoding past the sliding window, export that reloads, the mesh, LoRA, and the config
reader."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_hf_model, random_batch, torch_logits

from llm2llm_jax.common.errors import ConfigError
from llm2llm_jax.model.config import LlamaConfig
from llm2llm_jax.model.llama import forward
from llm2llm_jax.model.weights import iter_hf_tensors, load_hf_checkpoint, save_hf_checkpoint

WINDOW = 5  # shorter than every test sequence, so the window decides what a sliding layer sees
CASES = {
    "qwen2-gqa": ("qwen2", dict(num_key_value_heads=2)),
    "qwen2-tied-window": (
        "qwen2",
        dict(
            num_key_value_heads=1,
            tie_word_embeddings=True,
            num_hidden_layers=3,
            use_sliding_window=True,
            sliding_window=WINDOW,
            max_window_layers=1,
        ),
    ),
    "qwen3-gqa": ("qwen3", dict(num_key_value_heads=2, head_dim=24)),
    "qwen3-tied": ("qwen3", dict(num_key_value_heads=4, head_dim=16, tie_word_embeddings=True)),
    "mistral-window": ("mistral", dict(num_key_value_heads=2, sliding_window=WINDOW)),
    "gemma3-mixed": (
        "gemma3",
        dict(
            num_key_value_heads=2,
            head_dim=16,
            num_hidden_layers=3,
            sliding_window=WINDOW,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            query_pre_attn_scalar=24,
        ),
    ),
    "gemma3-untied-scaled": (
        "gemma3",
        dict(
            num_key_value_heads=1,
            head_dim=32,
            num_hidden_layers=2,
            sliding_window=WINDOW,
            tie_word_embeddings=False,
            layer_types=["full_attention", "sliding_attention"],
            rope_parameters={
                "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 50000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 1000.0},
            },
        ),
    ),
}
LOGIT_CASES = (
    [(case, True, kernels) for case in CASES for kernels in ("cpu", "xla")]
    + [(case, False, "cpu") for case in ("qwen2-tied-window", "gemma3-mixed")]
    + [("gemma3-mixed", True, "xla-fused")]
    + [("gemma3-mixed", scan, "xla-blocked") for scan in (True, False)]
)
KERNELS = {
    "cpu": dict(kernels="cpu"),
    "xla": dict(kernels="xla"),
    "xla-fused": dict(kernels="xla", fused_attention="xla"),
    "xla-blocked": dict(kernels="xla", fused_attention="blocked"),
}
# The gradient test's cases: every family with each kernel set over the unrolled stack (each layer's
# window known when tracing, so the fused attention goes by lengths and window), and the mixed Gemma 3
# stack scanned (the window a traced value, which the fused attention passes as a dense mask).
GRADIENT_CASES = [
    (case, False, kernels)
    for case in ("qwen2-tied-window", "qwen3-gqa", "mistral-window", "gemma3-mixed")
    for kernels in ("cpu", "xla")
] + [
    (case, scan, kernels)
    for case in ("mistral-window", "gemma3-mixed")
    for scan in (False, True)
    for kernels in ("xla-fused", "xla-blocked")
]


def _model(tmp_path, case, **runtime):
    family, overrides = CASES[case]
    path, ref = make_hf_model(tmp_path, family, **overrides)
    cfg, params = load_hf_checkpoint(path, **runtime)
    return path, ref, cfg, params


@pytest.mark.parametrize(
    "case,scan,kernels", LOGIT_CASES, ids=[f"{c}-{'scan' if s else 'loop'}-{k}" for c, s, k in LOGIT_CASES]
)
def test_logits_match_transformers(tmp_path, case, scan, kernels):
    _, ref_model, cfg, params = _model(tmp_path, case, scan_layers=scan, **KERNELS[kernels])
    assert cfg.family == CASES[case][0]
    ids, mask = random_batch(cfg.vocab_size, length=24)
    ref = torch_logits(ref_model, ids, mask)
    out = np.asarray(forward(cfg, params, jnp.asarray(ids), jnp.asarray(mask)))
    valid = mask.astype(bool)
    assert np.abs(ref[valid]).max() > 1.0
    diff = np.abs(out - ref)[valid].max()
    assert diff <= 1e-4, f"{case}: max |logit diff| {diff}"


@pytest.mark.parametrize("case", ["mistral-window", "gemma3-mixed"])
def test_the_window_and_the_family_switches_change_the_logits(tmp_path, case):
    """Guards for the parity test: without the window, or with Llama's maths on the same weights, the logits
    differ, so agreeing with transformers means each switch is applied."""
    _, _, cfg, params = _model(tmp_path, case)
    ids, mask = random_batch(cfg.vocab_size, length=24)
    run = lambda c: np.asarray(forward(c, params, jnp.asarray(ids), jnp.asarray(mask)))  # noqa: E731
    base = run(cfg)
    assert np.abs(base - run(cfg.replace(layer_types=None))).max() > 1e-3
    if cfg.family == "gemma3":
        assert np.abs(base - run(cfg.replace(query_pre_attn_scalar=None))).max() > 1e-3
        assert np.abs(base - run(cfg.replace(rope_local_theta=None))).max() > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize(
    "case,scan,kernels",
    GRADIENT_CASES,
    ids=[f"{c}-{'scan' if s else 'loop'}-{k}" for c, s, k in GRADIENT_CASES],
)
def test_loss_gradients_match_transformers(tmp_path, case, scan, kernels):
    """The target-token loss and every gradient (biases and query/key norms included) vs torch autograd."""
    from test_model_parity import mean_target_loss, target_batch, torch_target_loss_and_grads

    _, ref_model, cfg, params = _model(tmp_path, case, scan_layers=scan, **KERNELS[kernels])
    b = target_batch(cfg.vocab_size)
    loss, grads = jax.value_and_grad(mean_target_loss(cfg, b))(params)
    ref_loss, ref_grads = torch_target_loss_and_grads(ref_model, b)
    assert abs(float(loss) - ref_loss) <= 1e-5
    names = [name for name, _ in iter_hf_tensors(grads, cfg)]
    assert set(names) == set(ref_grads) - ({"lm_head.weight"} if cfg.tie_word_embeddings else set())
    for name, g in iter_hf_tensors(grads, cfg):
        scale = max(np.abs(ref_grads[name]).max(), 1e-6)
        np.testing.assert_allclose(g, ref_grads[name], atol=1e-5 * scale + 1e-7, err_msg=name)


@pytest.mark.parametrize("kernels", ["cpu", "xla"])
@pytest.mark.parametrize("case", ["qwen2-tied-window", "qwen3-tied", "mistral-window", "gemma3-mixed"])
def test_greedy_decoding_past_the_window_matches_generate(tmp_path, case, kernels):
    """Prompts of 6-10 tokens and 16 new ones: every sliding layer's window moves past the prompt, and the
    cached decode picks transformers' `generate` tokens one for one."""
    import torch

    from llm2llm_jax.student.decode import generate

    _, ref_model, cfg, params = _model(tmp_path, case, kernels=kernels)
    ids, mask = random_batch(cfg.vocab_size, batch=3, length=10, seed=3)
    new = 16
    tokens, _ = generate(
        cfg,
        params,
        jnp.asarray(ids),
        jnp.asarray(mask),
        jax.random.PRNGKey(0),
        max_new_tokens=new,
        eos_ids=(),
        pad_id=0,
    )
    with torch.no_grad():
        ref = ref_model.generate(
            torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
            pad_token_id=0,
        )[:, ids.shape[1] :].numpy()
    np.testing.assert_array_equal(np.asarray(tokens)[:, :new], ref)


@pytest.mark.parametrize("case", list(CASES))
def test_export_reloads_in_transformers_with_identical_logits(tmp_path, case):
    import transformers
    from conftest import HF_CLASSES

    _, ref_model, cfg, params = _model(tmp_path, case)
    out = save_hf_checkpoint(params, cfg, str(tmp_path / "exported"))
    reloaded = (
        getattr(transformers, HF_CLASSES[cfg.family][1])
        .from_pretrained(out, attn_implementation="eager")
        .eval()
    )
    ids, mask = random_batch(cfg.vocab_size, length=24)
    np.testing.assert_array_equal(torch_logits(reloaded, ids, mask), torch_logits(ref_model, ids, mask))
    again, _ = load_hf_checkpoint(out)
    assert again == cfg


@pytest.mark.slow
@pytest.mark.multi_device
@pytest.mark.parametrize("lora", [0, 4], ids=["full", "lora"])
@pytest.mark.parametrize("case", ["qwen2-gqa", "gemma3-mixed"])
def test_mesh_equals_one_device_and_every_parameter_has_a_rule(tmp_path, case, lora):
    """Loss and every gradient leaf (biases, query/key norms, Gemma's extra norms, LoRA adapters) on mesh
    (2,2,2) equal one device's; the partition rules place every new parameter (they raise on one they
    do not name)."""
    from test_train import _examples, loss_and_grads_on_meshes

    from llm2llm_jax.model.lora import add_lora_params
    from llm2llm_jax.student.train import host_params

    assert len(jax.devices()) == 8
    _, _, cfg, params = _model(tmp_path, case, lora_rank=lora)
    params = add_lora_params(params, cfg, jax.random.PRNGKey(4))
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 0.01 if p[-1].key == "lora_b" else x, host_params(params)
    )
    results = loss_and_grads_on_meshes(cfg, params, _examples(8, seed=5, vocab=cfg.vocab_size))
    assert abs(results[0][0] - results[1][0]) <= 1e-5
    leaves = jax.tree_util.tree_leaves_with_path(results[0][1])
    names = {str(path[-1].key) for path, _ in leaves}
    assert ({"lora_a", "lora_b"} <= names) == bool(lora)
    for a, b in zip(jax.tree.leaves(results[0][1]), jax.tree.leaves(results[1][1])):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_lora_on_each_family_starts_equal_and_trains_only_adapters(tmp_path):
    from llm2llm_jax.model.lora import add_lora_params, split_trainable

    for case in ("qwen2-gqa", "qwen3-gqa", "mistral-window", "gemma3-mixed"):
        _, _, cfg, params = _model(tmp_path / case, case, lora_rank=4)
        adapted = add_lora_params(params, cfg, jax.random.PRNGKey(0))
        ids, mask = random_batch(cfg.vocab_size, length=12)
        np.testing.assert_allclose(
            np.asarray(forward(cfg, adapted, jnp.asarray(ids), jnp.asarray(mask))),
            np.asarray(forward(cfg.replace(lora_rank=0), params, jnp.asarray(ids), jnp.asarray(mask))),
            atol=1e-6,
        )
        trainable, _ = split_trainable(adapted, cfg)
        keys = {str(p[-1].key) for p, _ in jax.tree_util.tree_leaves_with_path(trainable)}
        assert keys == {"lora_a", "lora_b"}, case


def _hf_dict(tmp_path, case):
    path, _ = make_hf_model(tmp_path, CASES[case][0], **CASES[case][1])
    with open(os.path.join(path, "config.json")) as f:
        return json.load(f)


def test_the_config_reader_takes_each_familys_fields(tmp_path):
    mistral = LlamaConfig.from_hf_dict(_hf_dict(tmp_path / "m", "mistral-window"))
    assert mistral.sliding_layers == (True, True) and mistral.sliding_window == WINDOW
    qwen = LlamaConfig.from_hf_dict(_hf_dict(tmp_path / "q", "qwen2-tied-window"))
    assert qwen.sliding_layers == (False, True, True) and qwen.traits.attention_bias
    plain_qwen = LlamaConfig.from_hf_dict(
        dict(_hf_dict(tmp_path / "q", "qwen2-tied-window"), use_sliding_window=False)
    )
    assert not any(plain_qwen.sliding_layers) and plain_qwen.sliding_window is None
    gemma = LlamaConfig.from_hf_dict(_hf_dict(tmp_path / "g", "gemma3-mixed"))
    assert gemma.sliding_layers == (True, False, True) and gemma.query_pre_attn_scalar == 24.0
    assert gemma.rope_local_theta == 10000.0 and gemma.rope_theta == 1_000_000.0 and gemma.tie_word_embeddings
    # an older Gemma 3 file: top-level RoPE bases and the 1-in-6 pattern instead of layer_types
    old = {
        k: v
        for k, v in _hf_dict(tmp_path / "g", "gemma3-mixed").items()
        if k not in ("layer_types", "rope_parameters")
    }
    old.update(num_hidden_layers=7, rope_theta=5e5, rope_local_base_freq=2e3, sliding_window_pattern=6)
    old_cfg = LlamaConfig.from_hf_dict(old)
    assert old_cfg.sliding_layers == (True,) * 5 + (False, True)
    assert (old_cfg.rope_theta, old_cfg.rope_local_theta) == (5e5, 2e3)
    # the multimodal Gemma 3 checkpoint: its text_config is the language model
    multi = LlamaConfig.from_hf_dict(
        {"model_type": "gemma3", "text_config": _hf_dict(tmp_path / "g", "gemma3-mixed")}
    )
    assert multi == gemma


@pytest.mark.parametrize(
    "changes,message",
    [
        (
            dict(model_type="gpt2", architectures=["GPT2LMHeadModel"]),
            "supported: LlamaForCausalLM, MistralForCausalLM",
        ),
        (dict(attention_bias=True), "'attention_bias' is true; qwen3"),
        (dict(final_logit_softcapping=30.0), "soft-capped"),
        (dict(hidden_act="gelu"), "'hidden_act' is 'gelu'; qwen3 uses 'silu'"),
    ],
)
def test_unsupported_checkpoints_are_one_line_naming_the_field(tmp_path, changes, message):
    d = dict(_hf_dict(tmp_path, "qwen3-gqa"), **changes)
    with pytest.raises(ConfigError, match=message):
        LlamaConfig.from_hf_dict(d, source="config.json")


def test_a_sliding_layer_needs_a_window():
    with pytest.raises(ConfigError, match="sliding_attention layers need a positive integer sliding_window"):
        LlamaConfig(num_hidden_layers=2, layer_types=("sliding_attention", "full_attention"))
    with pytest.raises(ConfigError, match="for each of the 2 layers"):
        LlamaConfig(num_hidden_layers=2, layer_types=("sliding_attention",), sliding_window=4)


# llama.cpp's tensor names for an HF layer's tensors (its Gemma converter also renames the four norms and adds
# 1 to every norm weight)
GGUF_NAMES = {
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
}
GGUF_GEMMA_NAMES = dict(
    GGUF_NAMES,
    **{
        "post_attention_layernorm.weight": "post_attention_norm.weight",
        "pre_feedforward_layernorm.weight": "ffn_norm.weight",
        "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
    },
)


def _write_gguf(model, family, path):
    """`model` as llama.cpp's converter writes it (f32 tensors, a placeholder vocabulary)."""
    import gguf

    cfg = model.config
    gemma = family == "gemma3"
    w = gguf.GGUFWriter(path, family)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(1_000_000.0 if gemma else 10000.0)
    if gemma:
        w.add_sliding_window(cfg.sliding_window)
    top = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    names = GGUF_GEMMA_NAMES if gemma else GGUF_NAMES
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        parts = name.split(".")
        gguf_name = top.get(name) or f"blk.{parts[2]}.{names['.'.join(parts[3:])]}"
        value = tensor.detach().numpy().astype(np.float32)
        w.add_tensor(gguf_name, value + 1.0 if gemma and name.endswith("norm.weight") else value)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(cfg.vocab_size)])
    w.add_token_types([1] * cfg.vocab_size)
    w.add_token_merges([])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize(
    "family,overrides",
    [
        ("qwen2", dict(num_key_value_heads=2)),
        (
            "qwen3",
            dict(num_key_value_heads=2, head_dim=128),
        ),  # what transformers assumes: its reader skips key_length
        (
            "gemma3",
            dict(
                num_key_value_heads=1,
                head_dim=256,
                sliding_window=WINDOW,
                query_pre_attn_scalar=256,
                rope_parameters={
                    "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
                    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                },
            ),
        ),
    ],
)
def test_gguf_import_matches_transformers_reading_the_same_file(tmp_path, family, overrides):
    """A GGUF of each family in llama.cpp's layout (no q/k permutation outside its llama arch; Gemma's norms
    stored plus one): our import and transformers' GGUF loader give the same logits."""
    from transformers import AutoModelForCausalLM

    from llm2llm_jax.model.weights import load_gguf_checkpoint

    _, ref_model = make_hf_model(tmp_path, family, **overrides)
    path = str(tmp_path / "model.gguf")
    _write_gguf(ref_model, family, path)
    theirs = AutoModelForCausalLM.from_pretrained(
        str(tmp_path), gguf_file="model.gguf", attn_implementation="eager"
    ).eval()
    cfg, params = load_gguf_checkpoint(path)
    assert cfg.family == family
    ids, mask = random_batch(cfg.vocab_size, length=24)
    ours = np.asarray(forward(cfg, params, jnp.asarray(ids), jnp.asarray(mask)))
    valid = mask.astype(bool)
    assert np.abs(ours - torch_logits(theirs, ids, mask))[valid].max() <= 1e-4
    assert np.abs(ours - torch_logits(ref_model, ids, mask))[valid].max() <= 1e-4
