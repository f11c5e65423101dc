"""SmolLM2-135M-Instruct from its GGUF vs transformers loading the same GGUF; GGUF error handling."""

import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REAL_PROMPTS, torch_logits

from llm2llm_jax.model.llama import forward
from llm2llm_jax.model.weights import WeightError, load_gguf_checkpoint, permute_qk, unpermute_qk
from llm2llm_jax.student.decode import left_pad


def test_smollm2_config_from_gguf_metadata(smollm2):
    cfg = smollm2[0]
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (
        576,
        30,
        9,
        3,
    )
    assert (cfg.vocab_size, cfg.tie_word_embeddings, cfg.rope_theta) == (49152, True, 100000.0)


def test_smollm2_logits_match_transformers(smollm2, smollm2_torch):
    cfg, params, tok, _ = smollm2
    ids, mask = left_pad([tok(p)["input_ids"] for p in REAL_PROMPTS], tok.pad_token_id)
    ref = torch_logits(smollm2_torch, ids.astype(np.int64), mask.astype(np.int64))
    out = np.asarray(forward(cfg, params, jnp.asarray(ids), jnp.asarray(mask)))
    valid = mask.astype(bool)
    diff = np.abs(out - ref)[valid].max()
    assert diff <= 1e-3, f"max |logit diff| {diff}"
    assert (out.argmax(-1) == ref.argmax(-1))[valid].all()


def test_smollm2_gguf_import_matches_transformers(smollm2, smollm2_torch):
    """The offline SmolLM2 is converted once to an f32 HF directory and read from there (the fixture's path,
    checked above); this reads the GGUF itself, q/k rows unpermuted and Q4_1 dequantized, whatever the cache
    holds."""
    tok, path = smollm2[2], smollm2[3]
    cfg, params = load_gguf_checkpoint(path, progress=False)
    ids, mask = left_pad([tok(p)["input_ids"] for p in REAL_PROMPTS], tok.pad_token_id)
    ref = torch_logits(smollm2_torch, ids.astype(np.int64), mask.astype(np.int64))
    out = np.asarray(forward(cfg, params, jnp.asarray(ids), jnp.asarray(mask)))
    valid = mask.astype(bool)
    assert np.abs(out - ref)[valid].max() <= 1e-3
    assert (out.argmax(-1) == ref.argmax(-1))[valid].all()


def test_qk_permutation_round_trips():
    w = np.arange(6 * 8 * 5, dtype=np.float32).reshape(6 * 8, 5)
    assert np.array_equal(unpermute_qk(permute_qk(w, 6), 6), w)
    assert not np.array_equal(permute_qk(w, 6), w)


def test_truncated_gguf_is_a_clear_error(smollm2, tmp_path):
    src = smollm2[3]
    cut = tmp_path / "cut.gguf"
    with open(src, "rb") as f, open(cut, "wb") as g:
        g.write(f.read(os.path.getsize(src) // 2))
    with pytest.raises(WeightError, match="truncated"):
        load_gguf_checkpoint(str(cut))


def test_not_a_gguf_and_missing_file(tmp_path):
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"PK\x03\x04 not gguf at all")
    with pytest.raises(WeightError, match="not a GGUF file"):
        load_gguf_checkpoint(str(bogus))
    with pytest.raises(WeightError, match="not found"):
        load_gguf_checkpoint(str(tmp_path / "absent.gguf"))


def test_the_mapped_reader_reads_what_ggufs_own_reader_reads_from_plain_arrays(smollm2):
    """MappedGGUF parses the file as gguf's GGUFReader does (every field's contents, every tensor's name,
    type and bytes) while holding the file as a plain ndarray: no memmap view per parsed value."""
    import gguf

    from llm2llm_jax.model.gguf_reader import MappedGGUF

    theirs, ours = gguf.GGUFReader(smollm2[3]), MappedGGUF(smollm2[3])
    assert list(ours.fields) == list(theirs.fields)
    assert len(ours.fields["tokenizer.ggml.tokens"].data) == 49152
    for key, field in theirs.fields.items():
        assert ours.fields[key].contents() == field.contents(), key
    assert [(t.name, t.tensor_type, tuple(t.shape)) for t in ours.tensors] == [
        (t.name, t.tensor_type, tuple(t.shape)) for t in theirs.tensors
    ]
    assert all(np.array_equal(a.data, b.data) for a, b in zip(ours.tensors, theirs.tensors))
    assert type(ours.data) is np.ndarray and type(ours.tensors[0].data) is np.ndarray
    assert type(ours.fields["tokenizer.ggml.tokens"].parts[-1]) is np.ndarray


def test_gguf_of_another_architecture_is_refused(smollm2, tmp_path):
    """Rewrite the SmolLM2 GGUF with general.architecture = 'gpt2' using the gguf writer."""
    import gguf

    reader = gguf.GGUFReader(smollm2[3])
    out = str(tmp_path / "gpt2.gguf")
    writer = gguf.GGUFWriter(out, arch="gpt2")
    writer.add_block_count(1)
    t = reader.tensors[0]
    writer.add_tensor(t.name, np.asarray(t.data), raw_shape=t.data.shape, raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(Exception, match="general.architecture"):
        load_gguf_checkpoint(out)
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_gguf_tokenizer_matches_transformers(smollm2):
    """Our torch-free GGUF tokenizer equals transformers' GGUF tokenizer on tricky text."""
    from transformers import AutoTokenizer

    from llm2llm_jax.model.loading import load_gguf_tokenizer

    path = smollm2[3]
    ours = load_gguf_tokenizer(path)
    ref = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    texts = REAL_PROMPTS + [
        "Natalia sold 48 clips for $1,234.50!",
        "<|im_start|>user\nhi<|im_end|>",
        "  two spaces\tand\ttabs\n\nnewlines  ",
        "héllo wörld 😀 日本語",
        "#### 72",
        "",
    ]
    for text in texts:
        assert ours(text)["input_ids"] == ref(text)["input_ids"], text
        assert ours.decode(ours(text)["input_ids"]) == text
    chat = [{"role": "user", "content": "hi"}]
    assert ours.apply_chat_template(
        chat, tokenize=False, add_generation_prompt=True
    ) == ref.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)


def test_the_converted_smollm2_directory_equals_its_gguf(smollm2, tmp_path):
    """load_smollm2 reads the f32 HF directory converted from the packaged GGUF: the same config,
    bit-identical weights, and a tokenizer that encodes, pads and templates as the one rebuilt from the
    GGUF."""
    import jax

    from llm2llm_jax.model.loading import convert_gguf, converted_dir, load_gguf_tokenizer, load_hf_tokenizer
    from llm2llm_jax.model.weights import load_hf_checkpoint

    cfg, params, tok, path = smollm2
    assert os.path.isdir(converted_dir(path))  # the fixture's load converted it, or found it
    convert_gguf(path, str(tmp_path / "converted"))  # what a first load does
    cfg, params = load_hf_checkpoint(str(tmp_path / "converted"))
    tok = load_hf_tokenizer(str(tmp_path / "converted"))
    direct_cfg, direct = load_gguf_checkpoint(path)
    assert direct_cfg == cfg
    assert jax.tree.structure(direct) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(direct), jax.tree.leaves(params)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    gguf_tok = load_gguf_tokenizer(path)
    text = "<|im_start|>user\nWhat is 12345 + 67, ünïcode?<|im_end|>\n"
    assert tok(text)["input_ids"] == gguf_tok(text)["input_ids"]
    assert (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id, tok.padding_side) == (
        gguf_tok.pad_token_id,
        gguf_tok.eos_token_id,
        gguf_tok.bos_token_id,
        "left",
    )
    messages = [{"role": "user", "content": "hi"}]
    assert tok.apply_chat_template(messages, tokenize=False) == gguf_tok.apply_chat_template(
        messages, tokenize=False
    )
