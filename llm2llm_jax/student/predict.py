"""One predictor for everything a run asks of a model: the student's evaluation and the local teacher.

It prepares the weights for inference once (`decode.inference_weights`), cuts prompts into fixed-size
batches of similar length (padding is compute: a batch is padded to its own longest prompt, rounded up to
`pad_multiple` so that few shapes are compiled), reads the tokens every prompt of a batch begins with
once, and evaluates in one of two modes (`eval.mode`): `generate` decodes greedily and parses each answer
with the task; `score` (classification) picks the label whose answer the model finds most likely
(`scoring.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

from llm2llm_jax.common.console import progress_bar, say
from llm2llm_jax.data.tasks import Task
from llm2llm_jax.student import flops, prompting
from llm2llm_jax.student.decode import (
    compile_ahead,
    decode_batch,
    inference_shapes,
    inference_weights,
    padded_width,
)
from llm2llm_jax.student.prompting import candidate_ids
from llm2llm_jax.student.scoring import score_batch

EVAL_MODES = ("generate", "score")  # eval.mode: see `Predictor.evaluate`
# Prompt widths and shared prefixes are rounded to this many tokens unless a caller says otherwise.
PAD_MULTIPLE = 16


class Predictor:
    """Batched decoding with one set of prepared weights.

    cfg, params: the model (with LoRA, `params` carry the adapters and cfg applies them). mesh: when several
    processes share it, inputs are placed replicated and outputs gathered.
    """

    def __init__(self, cfg, params, tokenizer, batch_size: int, mesh=None, pad_multiple: int = PAD_MULTIPLE):
        self.cfg, self.params = inference_weights(cfg, params)  # cast and untied once, not per batch
        self.tokenizer, self.batch_size, self.mesh, self.pad_multiple = (
            tokenizer,
            batch_size,
            mesh,
            pad_multiple,
        )
        self.flops = 0.0  # of every batch so far, padding included (llm2llm_jax/student/flops.py)

    def generate(
        self,
        token_lists: Sequence[Sequence[int]],
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        rngs: Sequence | None = None,
        bar=None,
        prefix_multiple: int = 0,
        shape: tuple[int, int] | None = None,
    ) -> list[tuple[str, int]]:
        """(text, tokens generated) per prompt; rngs: one PRNG key per prompt when sampling.

        prefix_multiple > 0: the tokens that begin every prompt of a batch, as many as a multiple of this
        (so that batches share one compiled shape), are read once for the batch instead of once per prompt
        (a task's instruction, the local teacher's rules and worked example).

        shape: the (prefix, width) `decode_shape` gave for a larger set of prompts these belong to, so that
        a caller that decodes that set in several calls runs one program for all of them."""
        out: list = [None] * len(token_lists)
        if shape is None:
            shape = self.decode_shape(
                token_lists, max_new_tokens, temperature, top_p, rngs is not None, prefix_multiple
            )
        shared, width = shape
        for chunk in self.batches(token_lists):
            rows = [token_lists[i] for i in chunk]
            rests = [r[shared:] for r in rows]
            rng = [rngs[i] for i in chunk] if rngs is not None else None
            decoded = decode_batch(
                self.cfg,
                self.params,
                self.tokenizer,
                rests,
                self.batch_size,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                rng=rng,
                width=width,
                mesh=self.mesh,
                prefix=rows[0][:shared],
            )
            for i, answer in zip(chunk, decoded):
                out[i] = answer
            # The loop feeds back every token but the last, until the slowest row is done.
            fed_back = min(max(n for _, n in decoded), max_new_tokens - 1)
            self.flops += flops.decode_flops(self.cfg, self.batch_size, width, fed_back, prefix=shared)
            if bar is not None:
                bar.update(len(chunk))
        return out

    def decode_shape(
        self,
        token_lists: Sequence[Sequence[int]],
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        sampled: bool = False,
        prefix_multiple: int = 0,
    ) -> tuple[int, int]:
        """(prefix, width) for decoding these prompts with this predictor: see `decode_shape`."""
        return decode_shape(
            (self.cfg, self.batch_size),
            token_lists,
            self.pad_multiple,
            (max_new_tokens, temperature, top_p, sampled),
            prefix_multiple,
        )

    def compile_ahead(
        self,
        shape: tuple[int, int],
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        sampled: bool = False,
    ) -> None:
        """Start compiling, in the background, what `generate` runs for prompts of this `decode_shape`
        (`sampled`: with one PRNG key per prompt), so that its first batch need not wait for it."""
        shared, width = shape
        compile_ahead(
            self.cfg,
            self.params,
            self.tokenizer.pad_token_id,
            self.batch_size,
            width,
            shared,
            max_new_tokens=max_new_tokens,
            mesh=self.mesh,
            temperature=temperature,
            top_p=top_p,
            key_per_row=sampled,
        )

    def batches(self, token_lists: Sequence[Sequence[int]]) -> list[list[int]]:
        """Indices of `token_lists` in batches of up to batch_size, shortest prompts first (a stable sort, so
        the batches are a pure function of the prompts)."""
        order = sorted(range(len(token_lists)), key=lambda i: len(token_lists[i]))
        return [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]

    def _width(self, token_lists, chunk) -> int:
        return padded_width([token_lists[i] for i in chunk], self.pad_multiple)

    def evaluate(
        self,
        task: Task,
        examples: Sequence[dict],
        max_length: int,
        max_new_tokens: int,
        desc: str = "eval",
        progress: bool = False,
        mode: str = "generate",
        fmt: str = "plain",
    ) -> list[dict]:
        """One row per example with the model's answer (`generation`), its `prediction` and whether it is
        `correct`; score mode adds each label's log-probability (`logprobs`). Prompts longer than
        `max_length` tokens have their input cut, keeping the instruction and the cue."""
        prompts, cut = prompting.encode_all(task, examples, self.tokenizer, fmt, limit=max_length)
        if cut:
            say(
                f"{desc}: {cut} of {len(examples)} prompts were longer than data.max_length={max_length} "
                f"tokens; their inputs were cut, the instruction and the cue kept"
            )
        bar = progress_bar(len(examples), desc, progress, unit="ex")
        if mode == "score":
            rows = self._score(task, examples, prompts, bar, fmt)
        else:
            rows = []
            # A task's instruction begins every prompt: read once per batch.
            answers = self.generate(prompts, max_new_tokens, bar=bar, prefix_multiple=self.pad_multiple)
            for ex, (text, _) in zip(examples, answers):
                pred = task.parse(text)
                rows.append(
                    {
                        "id": ex["id"],
                        "generation": text,
                        "prediction": pred,
                        "correct": bool(task.score(pred, ex)),
                    }
                )
        bar.close()
        return rows

    def _score(self, task: Task, examples, prompts, bar, fmt: str = "plain") -> list[dict]:
        candidates = candidate_ids(task, self.tokenizer, fmt)  # each label's answer as training writes it
        rows: list = [None] * len(prompts)
        for chunk in self.batches(prompts):
            scores = score_batch(
                self.cfg,
                self.params,
                [prompts[i] for i in chunk],
                candidates,
                self.batch_size,
                self.tokenizer.pad_token_id,
                pad_multiple=self.pad_multiple,
                mesh=self.mesh,
            )
            # The prompts' prefill, then every candidate but its first token over a copy of its prompt's
            # cache.
            width, rest = self._width(prompts, chunk), max(map(len, candidates)) - 1
            self.flops += flops.decode_flops(self.cfg, self.batch_size, width, 0) + flops.forward_flops(
                self.cfg, self.batch_size * len(candidates), rest, rest, context_before=width
            )
            for i, row in zip(chunk, scores):
                ex, best = examples[i], int(row.argmax())
                pred = task.labels[best]
                rows[i] = {
                    "id": ex["id"],
                    "generation": task.words[best],
                    "prediction": pred,
                    "correct": bool(task.score(pred, ex)),
                    "logprobs": {label: round(float(v), 4) for label, v in zip(task.labels, row)},
                }
            if bar is not None:
                bar.update(len(chunk))
        return rows


def decode_shape(
    program: tuple,
    token_lists: Sequence[Sequence[int]],
    pad_multiple: int,
    options: tuple,
    prefix_multiple: int,
) -> tuple[int, int]:
    """(prefix, width): how many leading tokens every prompt shares (rounded down to `prefix_multiple`; 0
    reads none apart) and the width their rests are padded to (the widest rounded up to `pad_multiple`, or a
    wider one this process already decoded at for the same `program` (model, batch) and `options`): one
    shape, so every batch runs one program."""
    shared = common_prefix_length(token_lists, prefix_multiple) if prefix_multiple else 0
    needed = padded_width([t[shared:] for t in token_lists], pad_multiple)
    return shared, compiled_width((*program, shared, *options), needed)


def compile_evaluation_ahead(
    cfg,
    params,
    tokenizer,
    batch_size: int,
    prompt_sets,
    max_new_tokens: int,
    mesh=None,
    pad_multiple: int = PAD_MULTIPLE,
) -> None:
    """Start compiling, in the background, what `Predictor.evaluate` (generate mode) will run on each set of
    prompts in `prompt_sets`, in the order they will be evaluated: their shapes are known before the
    fine-tune whose weights they evaluate, so the compilation overlaps it. params: the weights to be
    evaluated, or arrays or ShapeDtypeStructs of their shapes, dtypes and shardings."""
    prepared_cfg, prepared = inference_shapes(cfg, params)
    greedy = (max_new_tokens, 0.0, 1.0, False)
    for prompts in prompt_sets:
        if not prompts:
            continue
        shared, width = decode_shape((prepared_cfg, batch_size), prompts, pad_multiple, greedy, pad_multiple)
        compile_ahead(
            prepared_cfg,
            prepared,
            tokenizer.pad_token_id,
            batch_size,
            width,
            shared,
            max_new_tokens=max_new_tokens,
            mesh=mesh,
        )


# The prompt widths this process has decoded at, per model, batch, prefix and decoding options: a later
# call whose prompts fit one of them runs its compiled program (padding up to at most twice what they need)
# instead of compiling another.
_COMPILED_WIDTHS: dict[tuple, set[int]] = {}
REUSE_UP_TO = 2.0


def compiled_width(key: tuple, needed: int) -> int:
    """The narrowest width already decoded at for `key` that holds `needed` tokens without more than
    doubling them, else `needed` (remembered for later calls)."""
    known = _COMPILED_WIDTHS.setdefault(key, set())
    fits = [w for w in known if needed <= w <= REUSE_UP_TO * needed]
    width = min(fits) if fits else needed
    known.add(width)
    return width


def common_prefix_length(token_lists: Sequence[Sequence[int]], multiple: int) -> int:
    """How many leading tokens every list shares, rounded down to `multiple`, leaving each at least one."""
    shortest = min(len(t) for t in token_lists)
    n = 0
    while n < shortest - 1 and all(t[n] == token_lists[0][n] for t in token_lists):
        n += 1
    return n // multiple * multiple
