"""Training examples as token ids and fixed-shape batches: tokenization (prompt tokens masked out of the
loss), truncation, length bucketing and collation, and the prefix every example shares."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from llm2llm_jax.common.errors import ConfigError
from llm2llm_jax.data.tasks import Task
from llm2llm_jax.student import prompting
from llm2llm_jax.student.recipe import TrainHParams

TRUNCATION_POLICIES = ("truncate_prompt", "drop")


def tokenize_examples(
    task: Task,
    examples: Sequence[dict],
    tokenizer,
    max_length: int,
    policy: str = "truncate_prompt",
    add_eos: bool = True,
    fmt: str = "plain",
):
    """Training examples (prompt tokens masked out of the loss) and a count of truncations/drops.

    truncate_prompt: keep the instruction, the cue and the whole target, and cut the end of the input (the
    start of the prompt when even that cannot fit). drop: leave out examples that do not fit.
    """
    if policy not in TRUNCATION_POLICIES:
        raise ConfigError(f"truncation policy {policy!r}: choose one of {TRUNCATION_POLICIES}")
    out, stats = [], {"truncated": 0, "dropped": 0}
    for ex in examples:  # fmt: 'plain' or 'chat' (prompting.py)
        prompt, target = prompting.example_ids(task, ex, tokenizer, fmt, add_eos=add_eos)
        overflow = len(prompt) + len(target) - max_length
        if overflow > 0:
            if policy == "drop" or len(target) >= max_length // 2:
                stats["dropped"] += 1
                continue
            fitted = prompting.fit_input(task, ex, tokenizer, fmt, max_length - len(target))
            if fitted is not None:
                prompt = prompting.example_ids(task, fitted, tokenizer, fmt, add_eos=add_eos)[0]
            prompt = prompt[max(0, len(prompt) + len(target) - max_length) :]
            stats["truncated"] += 1
        out.append(Example(prompt_ids=prompt, target_ids=target))
    return out, stats


# ---------------------------------------------------------------------------- batches for training
@dataclasses.dataclass
class Example:
    """One tokenized training example: the prompt tokens are masked out of the loss."""

    prompt_ids: Sequence[int]
    target_ids: Sequence[int]


def make_batches(
    examples: Sequence[Example],
    hp: TrainHParams,
    rng: np.random.Generator,
    pad_id: int = 0,
    shuffle: bool = True,
    bucket_batches: int = 32,
    shapes: Sequence[tuple[int, int]] = (),
) -> Iterator[dict]:
    """One epoch of fixed-shape batches [accum, micro, T].

    Length bucketing keeps padding low: examples are shuffled, cut into groups of `bucket_batches`
    batches, sorted by length inside each group, and each batch is padded only to its own longest
    example (rounded up to hp.seq_multiple), or to the narrowest of `shapes` (`batch_shapes`) that holds it.
    A short last batch is filled with all-masked rows.
    """
    order = rng.permutation(len(examples)) if shuffle else np.arange(len(examples))
    group = hp.batch_size * bucket_batches
    batches: list = []
    for start in range(0, len(order), group):
        chunk = sorted(
            order[start : start + group],
            key=lambda i: len(examples[i].prompt_ids) + len(examples[i].target_ids),
        )
        batches += [chunk[i : i + hp.batch_size] for i in range(0, len(chunk), hp.batch_size)]
    if shuffle:
        rng.shuffle(batches)
    for idx in batches:
        yield collate([examples[i] for i in idx], hp, pad_id, shapes)


def collate(
    rows: Sequence[Example], hp: TrainHParams, pad_id: int = 0, shapes: Sequence[tuple[int, int]] = ()
) -> dict:
    """Right-pad rows into [accum, micro, T] token arrays and [accum, micro, K] target positions.

    T rounds the longest row up to hp.seq_multiple and K the most targets in a row up to
    hp.target_multiple, so that few distinct shapes are compiled; with `shapes` ((T, K) pairs, narrowest
    first), the batch takes the narrowest that holds its longest row.
    """
    longest = max(_length(r, hp) for r in rows)
    fixed = next(((t, k) for t, k in shapes if t >= longest), None)
    if shapes and fixed is None:
        raise ValueError(f"a row of {longest} tokens is wider than every batch shape {list(shapes)}")
    width = fixed[0] if fixed else _rounded_width(longest, hp)
    n = hp.batch_size
    ids = np.full((n, width), pad_id, np.int32)
    attn = np.zeros((n, width), np.int32)
    predicting = []  # per row: positions whose next token is a target
    for i, r in enumerate(rows):
        seq = (list(r.prompt_ids) + list(r.target_ids))[:width]
        ids[i, : len(seq)] = seq
        attn[i, : len(seq)] = 1
        predicting.append(_predicting(r, width))
    most = max([len(p) for p in predicting] + [1])
    k = fixed[1] if fixed else _rounded_targets(most, width, hp)
    if most > k:
        raise ValueError(f"a row of {most} targets does not fit the batch shape {fixed}")
    positions = np.zeros((n, k), np.int32)
    mask = np.zeros((n, k), np.int32)
    for i, p in enumerate(predicting):
        positions[i, : len(p)] = list(p)
        mask[i, : len(p)] = 1
    rows_shape = (hp.accum_steps, n // hp.accum_steps)
    return {
        "input_ids": ids.reshape(rows_shape + (width,)),
        "attention_mask": attn.reshape(rows_shape + (width,)),
        "target_positions": positions.reshape(rows_shape + (k,)),
        "target_mask": mask.reshape(rows_shape + (k,)),
    }


def _predicting(r: Example, width: int) -> range:
    """The positions of a row cut to `width` whose next token is a target: from its last prompt token to
    its last but one."""
    return range(max(len(r.prompt_ids), 1) - 1, min(len(r.prompt_ids) + len(r.target_ids), width) - 1)


def _length(r: Example, hp: TrainHParams) -> int:
    return min(len(r.prompt_ids) + len(r.target_ids), hp.max_length)


def _rounded_width(length: int, hp: TrainHParams) -> int:
    return min(-(-length // hp.seq_multiple) * hp.seq_multiple, max(hp.max_length, hp.seq_multiple))


def _rounded_targets(most: int, width: int, hp: TrainHParams) -> int:
    return min(-(-most // hp.target_multiple) * hp.target_multiple, width)


def batch_shapes(examples: Sequence[Example], hp: TrainHParams) -> tuple[tuple[int, int], ...]:
    """The (width, target positions) a fine-tune pads its batches to: at most hp.row_widths widths, each a
    program compiled once, chosen from the examples' lengths (rounded up to hp.seq_multiple) to pad least;
    () when hp.row_widths is 0 (each batch padded to its own longest row).

    The widest is the longest example's, so every batch fits; the narrower ones minimise the total of every
    example's padded width, a proxy for the batches' (a batch is as wide as its longest row, and
    length bucketing groups rows of like length). Each width's target positions hold the most targets of
    any example that fits it.
    """
    if hp.row_widths <= 0 or not examples:
        return ()
    rounded = [_rounded_width(_length(e, hp), hp) for e in examples]
    counts: dict[int, int] = {}
    for w in rounded:
        counts[w] = counts.get(w, 0) + 1
    shapes = []
    for w in _fewest_widths(sorted(counts.items()), hp.row_widths):
        fitting = [len(_predicting(e, w)) for e, r in zip(examples, rounded) if r <= w]
        shapes.append((w, _rounded_targets(max(fitting + [1]), w, hp)))
    return tuple(shapes)


def step_shape(batch: dict) -> tuple[tuple, int, int]:
    """(rows [accumulation steps, micro-batch, width], target positions a row, shared prefix length) of a
    collated batch: what a train step's program is specific to."""
    return batch["input_ids"].shape, batch["target_positions"].shape[-1], batch["prefix_ids"].shape[0]


def batch_purpose(rows: tuple, targets: int, prefix_length: int) -> str:
    """A `step_shape` as the run's compile log names it: 'batch 8 x 24, 8 targets, prefix 20'."""
    accum, micro, width = rows
    steps = f"{accum} x " if accum > 1 else ""
    return f"batch {steps}{micro} x {width}, {targets} targets, prefix {prefix_length}"


def _fewest_widths(counted: Sequence[tuple[int, int]], most: int) -> list[int]:
    """At most `most` of the candidate widths in `counted` ((width, examples), narrowest first), the widest
    always among them, such that padding every example to the narrowest chosen width that holds it costs
    the fewest tokens (dynamic programming over the candidates)."""
    widths = [w for w, _ in counted]
    n = len(widths)
    upto = [0]  # upto[j]: examples of candidates before j
    for _, c in counted:
        upto.append(upto[-1] + c)
    # cost[j][m]: fewest tokens for the examples of candidates 0..j, with j chosen and m widths chosen in all
    inf = float("inf")
    cost = [[inf] * (most + 1) for _ in range(n)]
    back = [[-1] * (most + 1) for _ in range(n)]
    for j in range(n):
        cost[j][1] = widths[j] * upto[j + 1]
        for m in range(2, most + 1):
            for i in range(j):
                total = cost[i][m - 1] + widths[j] * (upto[j + 1] - upto[i + 1])
                if total < cost[j][m]:
                    cost[j][m], back[j][m] = total, i
    m = min(range(1, most + 1), key=lambda k: (cost[n - 1][k], k))
    chosen, j = [], n - 1
    while j >= 0 and m >= 1:
        chosen.append(widths[j])
        j, m = back[j][m], m - 1
    return sorted(chosen)


def split_shared_prefix(examples: Sequence[Example], multiple: int) -> tuple[tuple, list[Example]]:
    """(the tokens every example's prompt begins with, rounded down to a multiple of `multiple`, and the
    examples without them). Every prompt keeps at least one token of its own (its last prompt token predicts
    the first target), so that no target position moves into the prefix."""
    if not examples:
        return (), list(examples)
    first = list(examples[0].prompt_ids)
    n = min(len(e.prompt_ids) for e in examples) - 1
    for e in examples[1:]:
        ids = e.prompt_ids
        while n > 0 and list(ids[:n]) != first[:n]:
            n -= 1
    n = (max(n, 0) // multiple) * multiple
    if not n:
        return (), list(examples)
    return tuple(first[:n]), [Example(e.prompt_ids[n:], e.target_ids) for e in examples]
