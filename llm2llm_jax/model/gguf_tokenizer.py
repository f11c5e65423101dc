"""Build an HF fast tokenizer from a GGUF's embedded BPE vocabulary, without torch.

transformers can do this too, but its GGUF path imports torch; a TPU VM running this project
should not need torch. Only byte-level BPE vocabularies (`tokenizer.ggml.model == "gpt2"`, which
SmolLM2, Llama-3 and most recent Llama-family GGUFs use) are built here; SentencePiece vocabularies
(`"llama"`: Gemma, Llama-2) go through transformers' GGUF converter, which needs torch.
"""

from __future__ import annotations

import importlib.util
import os

from llm2llm_jax.common.errors import UserError
from llm2llm_jax.model.weights import open_gguf

# llama.cpp pre-tokenizer names whose regex first splits every digit on its own (then GPT-2 rules).
_DIGIT_SPLIT_PRE = {"smollm", "starcoder", "refact", "codeshell"}
_GGML_CONTROL = 3  # llama.cpp token type for control (special) tokens


class TokenizerError(UserError, ValueError):
    """A GGUF whose tokenizer cannot be rebuilt here."""


def _field(reader, key):
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def tokenizer_from_gguf(path: str):
    """A transformers PreTrainedTokenizerFast equal to the GGUF's tokenizer (left padding)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    reader = open_gguf(path)
    kind = _field(reader, "tokenizer.ggml.model")
    if kind == "llama":
        return _sentencepiece_from_gguf(path)
    if kind != "gpt2":
        raise TokenizerError(
            f"{path}: tokenizer.ggml.model is {kind!r}; only byte-level BPE ('gpt2') and "
            f"SentencePiece ('llama') vocabularies are rebuilt from GGUF; convert the model to an HF "
            f"directory with its tokenizer and use model.source=hf"
        )
    tokens = _field(reader, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges")]
    types = _field(reader, "tokenizer.ggml.token_type") or [1] * len(tokens)
    pre = _field(reader, "tokenizer.ggml.pre") or "default"

    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, fuse_unk=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in _DIGIT_SPLIT_PRE:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(
        [
            AddedToken(t, special=True, normalized=False)
            for t, kind in zip(tokens, types)
            if kind == _GGML_CONTROL
        ]
    )

    def token_for(key):
        idx = _field(reader, key)
        return None if idx is None else tokens[int(idx)]

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=token_for("tokenizer.ggml.bos_token_id"),
        eos_token=token_for("tokenizer.ggml.eos_token_id"),
        unk_token=token_for("tokenizer.ggml.unknown_token_id"),
        pad_token=token_for("tokenizer.ggml.padding_token_id"),
        padding_side="left",
    )
    template = _field(reader, "tokenizer.chat_template")
    if template:
        hf.chat_template = template
    if hf.pad_token is None:
        hf.pad_token = hf.eos_token
    return hf


def _sentencepiece_from_gguf(path: str):
    """A SentencePiece GGUF vocabulary through transformers' converter (left padding)."""
    from transformers import AutoTokenizer

    if importlib.util.find_spec("torch") is None:
        raise TokenizerError(
            f"{path}: its SentencePiece vocabulary is rebuilt by transformers, which needs PyTorch "
            f"here (pip install torch), or convert the model to an HF directory once and use "
            f"model.source=hf"
        )
    tok = AutoTokenizer.from_pretrained(
        os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path)
    )
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
