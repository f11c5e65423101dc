"""HF import -> export -> transformers reload round trip, and clear errors on bad checkpoints."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_hf_llama, random_batch, torch_logits
from safetensors.numpy import load_file, save_file

from llm2llm_jax.common.errors import ConfigError
from llm2llm_jax.model.llama import forward
from llm2llm_jax.model.weights import WeightError, load_hf_checkpoint, save_hf_checkpoint


def _reload_torch(path):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(path, attn_implementation="eager").eval()  # as make_hf_llama's


@pytest.mark.parametrize(
    "tied,scan,shard_bytes",
    [(False, True, 2**31), (True, False, 2**31), (False, True, 60_000)],
    ids=["untied-scan-single", "tied-loop-single", "untied-scan-sharded"],
)
def test_round_trip_through_transformers(tmp_path, tied, scan, shard_bytes):
    src, src_model = make_hf_llama(tmp_path, tie_word_embeddings=tied)
    cfg, params = load_hf_checkpoint(src, scan_layers=scan)
    out = save_hf_checkpoint(params, cfg, str(tmp_path / "exported"), max_shard_bytes=shard_bytes)
    if shard_bytes < 2**31:
        assert os.path.exists(os.path.join(out, "model.safetensors.index.json"))
        assert len([f for f in os.listdir(out) if f.endswith(".safetensors")]) > 1
    reloaded = _reload_torch(out)
    ids, mask = random_batch(cfg.vocab_size)
    np.testing.assert_array_equal(torch_logits(reloaded, ids, mask), torch_logits(src_model, ids, mask))
    # and our own re-import of the export gives identical logits
    cfg2, params2 = load_hf_checkpoint(out, scan_layers=scan)
    a = forward(cfg, params, jnp.asarray(ids), jnp.asarray(mask))
    b = forward(cfg2, params2, jnp.asarray(ids), jnp.asarray(mask))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bf16_export_loads_in_transformers(tmp_path):
    src, _ = make_hf_llama(tmp_path)
    cfg, params = load_hf_checkpoint(src)
    out = save_hf_checkpoint(params, cfg, str(tmp_path / "bf16"), dtype="bfloat16")
    tensors = load_file(os.path.join(out, "model.safetensors"))
    assert str(next(iter(tensors.values())).dtype) == "bfloat16"
    assert _reload_torch(out) is not None


def test_export_refuses_existing_target_and_leaves_nothing_behind(tmp_path):
    src, _ = make_hf_llama(tmp_path)
    cfg, params = load_hf_checkpoint(src)
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(WeightError, match="already exists"):
        save_hf_checkpoint(params, cfg, str(target))
    assert os.listdir(target) == ["keep.txt"]
    # a failure mid-export (a param tree missing a tensor) leaves no partial directory
    broken = {k: v for k, v in params.items() if k != "norm"}
    with pytest.raises(KeyError):
        save_hf_checkpoint(broken, cfg, str(tmp_path / "partial"))
    assert not (tmp_path / "partial").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".export-")]


def _edit_config(path, **changes):
    cfg_file = os.path.join(path, "config.json")
    with open(cfg_file) as f:
        d = json.load(f)
    d.update(changes)
    with open(cfg_file, "w") as f:
        json.dump(d, f)


def test_not_llama_family_is_refused(tmp_path):
    src, _ = make_hf_llama(tmp_path)
    _edit_config(src, model_type="gpt2", architectures=["GPT2LMHeadModel"])
    with pytest.raises(ConfigError, match="model_type.*gpt2"):
        load_hf_checkpoint(src)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(WeightError, match="not a directory"):
        load_hf_checkpoint(str(tmp_path / "nowhere"))
    src, _ = make_hf_llama(tmp_path)
    with open(os.path.join(src, "config.json"), "w") as f:
        f.write('{\n  "model_type": "llama",\n  "hidden_size": 64,,\n}')
    with pytest.raises(ConfigError, match="config.json: line 3"):
        load_hf_checkpoint(src)
    os.remove(os.path.join(src, "config.json"))
    with pytest.raises(ConfigError, match="config.json: not found"):
        load_hf_checkpoint(src)


def test_corrupt_safetensors(tmp_path):
    src, _ = make_hf_llama(tmp_path)
    with open(os.path.join(src, "model.safetensors"), "r+b") as f:
        f.truncate(1000)
    with pytest.raises(WeightError, match="model.safetensors"):
        load_hf_checkpoint(src)


def test_shape_dtype_missing_and_unexpected_tensors_are_named(tmp_path):
    src, _ = make_hf_llama(tmp_path)
    file = os.path.join(src, "model.safetensors")
    original = load_file(file)

    def write(tensors):
        save_file(tensors, file, metadata={"format": "pt"})

    bad = dict(original)
    bad["model.layers.1.self_attn.k_proj.weight"] = np.zeros((7, 64), np.float32)
    write(bad)
    with pytest.raises(WeightError, match=r"model.layers.1.self_attn.k_proj.weight' has shape \(7, 64\)"):
        load_hf_checkpoint(src)

    bad = dict(original)
    bad["model.norm.weight"] = np.zeros((64,), np.int32)
    write(bad)
    with pytest.raises(WeightError, match="model.norm.weight' has dtype int32"):
        load_hf_checkpoint(src)

    bad = {k: v for k, v in original.items() if k != "model.layers.0.mlp.up_proj.weight"}
    write(bad)
    with pytest.raises(WeightError, match="missing tensor.*model.layers.0.mlp.up_proj.weight"):
        load_hf_checkpoint(src)

    bad = dict(original)
    bad["model.layers.5.mlp.up_proj.weight"] = original["model.layers.0.mlp.up_proj.weight"]
    write(bad)
    with pytest.raises(WeightError, match="unexpected tensor 'model.layers.5"):
        load_hf_checkpoint(src)


def test_sharded_index_naming_a_missing_shard(tmp_path):
    src, _ = make_hf_llama(tmp_path)
    with open(os.path.join(src, "model.safetensors.index.json"), "w") as f:
        json.dump({"weight_map": {"model.norm.weight": "model-00002-of-00002.safetensors"}}, f)
    with pytest.raises(WeightError, match="model-00002-of-00002.safetensors"):
        load_hf_checkpoint(src)
