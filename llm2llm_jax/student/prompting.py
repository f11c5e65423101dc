"""How an example becomes the student's tokens: plain text (instruction, input, cue; the target after it) or
the tokenizer's own chat template (the same text as the user turn, the target as the assistant turn).

Training, evaluation and score-mode candidates all read their ids from here, so the three agree on every
token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from llm2llm_jax.common.errors import UserError

FORMATS = ("auto", "plain", "chat")


class PromptFormatError(UserError, ValueError):
    """A prompt format the tokenizer cannot render."""


def resolve(choice: str, tokenizer) -> str:
    """'plain' or 'chat' for `data.prompt_format`: 'auto' is chat when the tokenizer has a chat template."""
    if choice not in FORMATS:
        raise PromptFormatError(f"data.prompt_format={choice!r}: choose one of {FORMATS}")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if choice == "chat" and not has_template:
        raise PromptFormatError(
            "data.prompt_format='chat': this tokenizer has no chat template; use 'plain' (or 'auto')"
        )
    if choice == "auto":
        return "chat" if has_template else "plain"
    return choice


def leading_special_ids(tokenizer) -> list[int]:
    """The BOS a tokenizer puts before text by default (Gemma's, Llama's), or nothing (SmolLM2's)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return []
    return [bos] if tokenizer("x", add_special_tokens=True)["input_ids"][:1] == [bos] else []


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _user_turn(task, example: Mapping) -> list[dict]:
    return [{"role": "user", "content": task.prompt(example)}]


def _chat_head(task, example: Mapping, tokenizer) -> str:
    """The conversation up to the assistant's answer: the user turn and the template's generation prompt."""
    return tokenizer.apply_chat_template(
        _user_turn(task, example), tokenize=False, add_generation_prompt=True
    )


def prompt_ids(task, example: Mapping, tokenizer, fmt: str) -> list[int]:
    """The ids the model reads before its answer."""
    if fmt == "chat":
        return _ids(tokenizer, _chat_head(task, example, tokenizer))
    return leading_special_ids(tokenizer) + _ids(tokenizer, task.prompt(example))


def example_ids(
    task, example: Mapping, tokenizer, fmt: str, add_eos: bool = True
) -> tuple[list[int], list[int]]:
    """(prompt ids, target ids): the target is what the model is trained to write after the prompt: plain, the
    target text and EOS; chat, the assistant turn as the template renders it, up to and including its first
    end-of-turn (EOS) token."""
    eos = tokenizer.eos_token_id
    if fmt != "chat":
        target = _ids(tokenizer, task.target(example)) + ([eos] if add_eos and eos is not None else [])
        return prompt_ids(task, example, tokenizer, fmt), target
    head = _chat_head(task, example, tokenizer)
    answer = {"role": "assistant", "content": task.target(example).strip()}
    whole = tokenizer.apply_chat_template(_user_turn(task, example) + [answer], tokenize=False)
    if not whole.startswith(head):
        raise PromptFormatError(
            "data.prompt_format='chat': this chat template does not render the conversation "
            "as the prompt followed by the answer; use data.prompt_format=plain"
        )
    ids = _ids(tokenizer, whole[len(head) :])
    if eos in ids:
        ids = ids[
            : ids.index(eos) + 1
        ]  # the end-of-turn token is learnt; what the template adds after it is not
    elif add_eos and eos is not None:
        ids.append(eos)
    return _ids(tokenizer, head), ids


def target_ids(task, example: Mapping, tokenizer, fmt: str, add_eos: bool = True) -> list[int]:
    """The target half of `example_ids`."""
    return example_ids(task, example, tokenizer, fmt, add_eos)[1]


def candidate_ids(task, tokenizer, fmt: str) -> list[list[int]]:
    """Each label's answer as training writes it (score mode ranks these)."""
    return [target_ids(task, {"input": "", "output": label}, tokenizer, fmt) for label in task.labels]


def fit_input(task, example: Mapping, tokenizer, fmt: str, limit: int) -> Mapping | None:
    """`example` with the end of its input cut so that its prompt takes at most `limit` tokens, keeping the
    task's instruction before the input and the cue after it; `example` itself when it fits, None when even
    an empty input does not fit."""
    if len(prompt_ids(task, example, tokenizer, fmt)) <= limit:
        return example
    words = _ids(tokenizer, example["input"])
    keep = len(words)
    while keep > 0:
        # drop the overflow (at least one token) and measure again: a cut can retokenise its neighbours
        shorter = dict(example, input=tokenizer.decode(words[:keep]).rstrip())
        over = len(prompt_ids(task, shorter, tokenizer, fmt)) - limit
        if over <= 0:
            return shorter
        keep -= max(1, over)
    return None


def encode_all(
    task, examples: Sequence[Mapping], tokenizer, fmt: str, limit: int = 0
) -> tuple[list[list[int]], int]:
    """(each example's prompt ids, how many had their input cut to fit `limit` tokens; 0: no limit). A prompt
    that cannot fit even without its input keeps its last `limit` tokens (the cue)."""
    out, cut = [], 0
    for ex in examples:
        fitted = fit_input(task, ex, tokenizer, fmt, limit) if limit else ex
        ids = prompt_ids(task, fitted if fitted is not None else ex, tokenizer, fmt)
        cut += fitted is not ex
        out.append(ids[-limit:] if limit else ids)
    return out, cut
