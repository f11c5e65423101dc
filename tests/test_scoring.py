"""Score-mode evaluation: the cached, candidate-batched log-likelihoods equal the full-sequence likelihood of
each prompt + answer, with both kernel sets and cache layouts, and the predictor picks the most likely
label."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm2llm_jax.model.config import tiny_config
from llm2llm_jax.model.llama import forward, init_params
from llm2llm_jax.student.decode import left_pad
from llm2llm_jax.student.prompting import candidate_ids
from llm2llm_jax.student.scoring import candidate_logprobs, right_pad


def sequence_logprob(cfg, params, prompt, answer, width=16) -> float:
    """log p(answer | prompt) by one uncached forward pass over the whole sequence (right-padded to `width`,
    which the causal mask keeps out of the real positions, so every call shares one compilation)."""
    seq = list(prompt) + list(answer)
    ids = jnp.asarray([seq + [0] * (width - len(seq))], jnp.int32)
    mask = jnp.asarray([[1] * len(seq) + [0] * (width - len(seq))], jnp.int32)
    logp = jax.nn.log_softmax(np.asarray(forward(cfg, params, ids, mask))[0], axis=-1)
    start = len(prompt)
    return float(sum(logp[start - 1 + k, tok] for k, tok in enumerate(answer)))


VARIANTS = [(True, True, "cpu"), (False, False, "xla")]


@pytest.mark.slow
@pytest.mark.parametrize(
    "tied,scan,kernels",
    VARIANTS,
    ids=[f"{'tied' if t else 'untied'}-{'scan' if s else 'unrolled'}-{k}" for t, s, k in VARIANTS],
)
def test_candidate_logprobs_equal_the_full_sequence_likelihood(tied, scan, kernels):
    cfg = tiny_config(scan_layers=scan, tie_word_embeddings=tied, kernels=kernels)
    params = init_params(cfg, jax.random.PRNGKey(3))
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16]]
    answers = [[20], [21, 22], [23, 24, 25], [21, 22, 26]]  # lengths 1 to 3; one the prefix of another
    ids, mask = left_pad(prompts, pad_id=0, multiple=8)
    cand_ids, cand_mask = right_pad(answers, pad_id=0)
    got = np.asarray(candidate_logprobs(cfg, params, ids, mask, cand_ids, cand_mask))
    want = np.array([[sequence_logprob(cfg, params, p, a) for a in answers] for p in prompts])
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-4)
    single = np.asarray(candidate_logprobs(cfg, params, ids, mask, cand_ids[:1, :1], cand_mask[:1, :1]))
    np.testing.assert_allclose(single[:, 0], want[:, 0], rtol=0, atol=2e-4)  # one-token answers: prefill only


@pytest.mark.slow
def test_score_mode_predicts_the_most_likely_label():
    from loop_harness import tiny_student

    from llm2llm_jax.data.tasks import get_task
    from llm2llm_jax.student.predict import Predictor

    cfg, params, tok = tiny_student()
    task = get_task("trec")
    examples = [
        {"id": f"e{i}", "input": text, "output": label}
        for i, (text, label) in enumerate(
            [
                ("What is the capital of France ?", "LOC"),
                ("Who wrote Hamlet ?", "HUM"),
                ("How many legs has a spider ?", "NUM"),
            ]
        )
    ]
    rows = Predictor(cfg, params, tok, batch_size=2).evaluate(
        task, examples, max_length=64, max_new_tokens=4, mode="score"
    )
    candidates = candidate_ids(task, tok, "plain")
    assert candidates[0][-1] == tok.eos_token_id
    for ex, row in zip(examples, rows):
        prompt = tok(task.prompt(ex), add_special_tokens=False)["input_ids"]
        want = {
            label: sequence_logprob(cfg, params, prompt, cand, width=64)
            for label, cand in zip(task.labels, candidates)
        }
        assert row["logprobs"] == pytest.approx(want, abs=2e-3)
        assert (
            row["prediction"] == max(want, key=want.get)
            and task.parse(row["generation"]) == row["prediction"]
        )
        assert row["correct"] == (row["prediction"] == ex["output"])


def test_score_mode_needs_a_classification_task():
    from configs.base import base_config
    from llm2llm_jax.common.errors import ConfigError
    from llm2llm_jax.config.checks import validate

    c = base_config()
    c.task, c.data.source, c.model.source, c.eval.mode = "gsm8k", "gsm8k_offline", "smollm2", "score"
    with pytest.raises(ConfigError, match=r"config.eval.mode='score': .*task gsm8k has none; use 'generate'"):
        validate(c, jax.devices())
    c.eval.mode = "rank"
    with pytest.raises(ConfigError, match=r"config.eval.mode='rank': choose one of \('generate', 'score'\)"):
        validate(c, jax.devices())
