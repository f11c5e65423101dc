"""Score-mode answers for classification: each label's verbalizer ranked by the model's log-likelihood.

The model reads each prompt once (a prefill into a KV cache, as decoding does); the cache is then copied
once per candidate and every candidate's tokens are read in one batched step over those copies. A
candidate is the training target of its label (" " + verbalizer, then EOS, tokenized as `data.
tokenize_examples` does), and its score is the sum of its tokens' log-probabilities: the probability
of exactly that answer, so a verbalizer that is the prefix of another is not favoured. The prediction is
the best-scoring label, so every answer is a label and no parse can fail.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from llm2llm_jax.common import parallel
from llm2llm_jax.model.config import LlamaConfig
from llm2llm_jax.model.llama import LlamaForCausalLM, init_cache, repeat_cache_rows
from llm2llm_jax.student.decode import inference_weights, left_pad


def right_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), pad_id, np.int32)
    mask = np.zeros((len(sequences), width), np.int32)
    for i, s in enumerate(sequences):
        ids[i, : len(s)], mask[i, : len(s)] = s, 1
    return ids, mask


@functools.partial(jax.jit, static_argnames=("cfg",))
def candidate_logprobs(cfg: LlamaConfig, params, input_ids, attention_mask, cand_ids, cand_mask):
    """[B, C] log-probability of each candidate continuing each left-padded prompt.

    input_ids, attention_mask [B, T]: prompts; cand_ids, cand_mask [C, L]: right-padded candidates.
    """
    cfg, params = inference_weights(cfg, params)
    model = LlamaForCausalLM(cfg)
    b, t = input_ids.shape
    c, length = cand_ids.shape
    cache = init_cache(cfg, b, t + length)
    last = jnp.full((b, 1), t - 1, jnp.int32)
    logits, cache = model.apply(
        {"params": params}, input_ids, attention_mask, cache=cache, logit_positions=last
    )
    scores = jax.nn.log_softmax(logits[:, 0], axis=-1)[:, cand_ids[:, 0]]  # the first token of each candidate
    if length > 1:
        ids, mask = (
            jnp.tile(cand_ids, (b, 1)),
            jnp.tile(cand_mask, (b, 1)),
        )  # row r*C + j: prompt r, candidate j
        cache = repeat_cache_rows(cache, c, cfg.scan_layers)
        logits, _ = model.apply({"params": params}, ids[:, :-1], mask[:, :-1], cache=cache)
        logp = jax.nn.log_softmax(logits, axis=-1)
        rest = jnp.take_along_axis(logp, ids[:, 1:, None], axis=-1)[..., 0] * mask[:, 1:]
        scores = scores + rest.sum(axis=-1).reshape(b, c)
    return scores


def score_batch(
    cfg: LlamaConfig,
    params,
    token_lists: Sequence[Sequence[int]],
    candidates: Sequence[Sequence[int]],
    batch_size: int,
    pad_id: int,
    pad_multiple: int = 32,
    mesh=None,
) -> np.ndarray:
    """[n, C] candidate log-probabilities for up to `batch_size` prompts, padded to a fixed batch (one
    compilation). Looping over many batches: pass `inference_weights(cfg, params)` as cfg, params."""
    n = len(token_lists)
    rows = list(token_lists) + [token_lists[-1]] * (batch_size - n)
    ids, mask = left_pad(rows, pad_id, multiple=pad_multiple)
    cand_ids, cand_mask = right_pad(candidates, pad_id)
    if mesh is not None:
        ids, mask, cand_ids, cand_mask = parallel.replicate_inputs(mesh, ids, mask, cand_ids, cand_mask)
    return parallel.to_host(candidate_logprobs(cfg, params, ids, mask, cand_ids, cand_mask))[:n]
