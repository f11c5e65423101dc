"""Prompt formats: plain text (with the tokenizer's BOS where it adds one) and the tokenizer's chat template,
whose rendered ids equal transformers' `apply_chat_template` and whose loss covers exactly the assistant's
tokens."""

import numpy as np
import pytest

from llm2llm_jax.data.tasks import TASKS
from llm2llm_jax.student import prompting
from llm2llm_jax.student.batching import collate, tokenize_examples
from llm2llm_jax.student.recipe import TrainHParams

TREC = TASKS["trec"]
ROWS = [
    {"input": "Who wrote Hamlet ?", "output": "HUM"},
    {"input": "What does NASA stand for ?", "output": "ABBR"},
    {"input": "How far is the Moon from the Earth ?", "output": "NUM"},
]


def _reference_tokenizer(tok):
    """transformers' own tokenizer for the same files (the one a user would call apply_chat_template on)."""
    import tempfile

    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        return AutoTokenizer.from_pretrained(tmp)


def test_chat_ids_are_transformers_apply_chat_template(smollm2):
    tok = smollm2[2]
    ref = _reference_tokenizer(tok)
    assert prompting.resolve("auto", tok) == "chat"
    for row in ROWS:
        user = [{"role": "user", "content": TREC.prompt(row)}]
        answer = TREC.target(row).strip()
        prompt = prompting.prompt_ids(TREC, row, tok, "chat")
        target = prompting.target_ids(TREC, row, tok, "chat")
        expected_prompt = list(
            ref.apply_chat_template(user, add_generation_prompt=True, tokenize=True, return_dict=True)[
                "input_ids"
            ]
        )
        whole = list(
            ref.apply_chat_template(
                user + [{"role": "assistant", "content": answer}], tokenize=True, return_dict=True
            )["input_ids"]
        )
        assert prompt == expected_prompt
        end = (
            whole.index(tok.eos_token_id, len(prompt)) + 1
        )  # up to and including the end of the assistant turn
        assert prompt + target == whole[:end]
        assert tok.decode(target) == f"{answer}<|im_end|>"
        assert tok.decode(prompt).endswith("<|im_start|>assistant\n")


def test_only_the_assistant_tokens_carry_loss(smollm2):
    tok = smollm2[2]
    examples, _ = tokenize_examples(TREC, ROWS, tok, max_length=128, fmt="chat")
    batch = collate(examples, TrainHParams(batch_size=3, seq_multiple=8))
    for row, ex in enumerate(examples):
        ids = batch["input_ids"][0][row]
        mask = batch["target_mask"][0][row].astype(bool)
        positions = batch["target_positions"][0][row][mask]
        # position p predicts token p + 1: the predicted tokens are exactly the assistant turn, end-of-turn
        # included
        predicted = [int(ids[p + 1]) for p in positions]
        assert predicted == list(ex.target_ids)
        assert tok.decode(predicted).endswith("<|im_end|>") and "user" not in tok.decode(predicted)


def test_score_candidates_are_the_trained_answers(smollm2):
    tok = smollm2[2]
    for fmt in ("plain", "chat"):
        candidates = prompting.candidate_ids(TREC, tok, fmt)
        assert candidates == [
            prompting.target_ids(TREC, {"input": "", "output": label}, tok, fmt) for label in TREC.labels
        ]
        assert len({tuple(c) for c in candidates}) == len(TREC.labels)


def test_plain_prompts_keep_smollm2s_ids_and_get_a_bos_where_the_tokenizer_adds_one(smollm2):
    tok = smollm2[2]
    row = ROWS[0]
    assert (
        prompting.prompt_ids(TREC, row, tok, "plain")
        == tok(TREC.prompt(row), add_special_tokens=False)["input_ids"]
    )

    class WithBos:  # a tokenizer that starts text with BOS 7, as Gemma's and Llama's do
        bos_token_id, eos_token_id, chat_template = 7, 8, None

        def __call__(self, text, add_special_tokens=True):
            ids = [ord(c) for c in text]
            return {"input_ids": ([7] if add_special_tokens else []) + ids}

    ids = prompting.prompt_ids(TREC, row, WithBos(), "plain")
    assert ids[0] == 7 and ids[1:] == [ord(c) for c in TREC.prompt(row)]
    assert prompting.target_ids(TREC, row, WithBos(), "plain")[-1] == 8
    assert prompting.resolve("auto", WithBos()) == "plain"
    with pytest.raises(prompting.PromptFormatError, match="no chat template"):
        prompting.resolve("chat", WithBos())
    with pytest.raises(prompting.PromptFormatError, match="choose one of"):
        prompting.resolve("markdown", WithBos())


def test_chat_evaluation_prompts_end_with_the_generation_prompt(smollm2):
    tok = smollm2[2]
    prompts, cut = prompting.encode_all(TREC, ROWS, tok, "chat")
    assert cut == 0
    head = np.asarray(prompts[0][:10])
    assert all(
        list(p[:10]) == list(head) for p in prompts
    )  # the shared system and user start: read once per batch
    assert all(tok.decode(p).endswith("Class:<|im_end|>\n<|im_start|>assistant\n") for p in prompts)


@pytest.mark.parametrize("fmt", ["plain", "chat"])
def test_a_long_prompt_loses_the_end_of_its_input_not_the_instruction_or_the_cue(smollm2, fmt):
    tok = smollm2[2]
    long = {"input": "Who " + "really " * 200 + "wrote Hamlet ?", "output": "HUM"}
    whole = prompting.prompt_ids(TREC, long, tok, fmt)
    prompts, cut = prompting.encode_all(TREC, [long, ROWS[0]], tok, fmt, limit=64)
    assert cut == 1 and len(prompts[0]) <= 64 < len(whole)
    assert prompts[1] == prompting.prompt_ids(TREC, ROWS[0], tok, fmt)  # a prompt that fits is untouched
    text = tok.decode(prompts[0])
    assert TREC.instruction in text and "Who really" in text and "wrote Hamlet" not in text
    assert text.endswith("Class:<|im_end|>\n<|im_start|>assistant\n" if fmt == "chat" else "Class:")
