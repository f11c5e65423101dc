"""One predictor for everything a run asks of a model: the student's evaluation and the local teacher.

It prepares the weights for inference once (`decode.inference_weights`), cuts prompts into fixed-size
batches (one compilation), and evaluates in one of two modes (`eval.mode`): `generate` decodes greedily
and parses each answer with the task; `score` (classification) picks the label whose answer the model
finds most likely (`scoring.py`).
"""

from __future__ import annotations

from typing import Optional, Sequence

from llm2llm_jax.decode import decode_batch, inference_weights
from llm2llm_jax.scoring import candidate_tokens, score_batch
from llm2llm_jax.tasks import Task


class Predictor:
    """Batched decoding with one set of prepared weights.

    cfg, params: the model (with LoRA, `params` carry the adapters and cfg applies them). mesh: when several
    processes share it, inputs are placed replicated and outputs gathered.
    """

    def __init__(self, cfg, params, tokenizer, batch_size: int, mesh=None, pad_multiple: int = 32):
        self.cfg, self.params = inference_weights(cfg, params)  # cast and untied once, not per batch
        self.tokenizer, self.batch_size, self.mesh, self.pad_multiple = tokenizer, batch_size, mesh, pad_multiple

    def generate(self, token_lists: Sequence[Sequence[int]], max_new_tokens: int, temperature: float = 0.0,
                 top_p: float = 1.0, rngs: Optional[Sequence] = None, bar=None) -> list[tuple[str, int]]:
        """(text, tokens generated) per prompt; rngs: one PRNG key per prompt when sampling."""
        out = []
        for start in range(0, len(token_lists), self.batch_size):
            chunk = token_lists[start:start + self.batch_size]
            rng = list(rngs[start:start + self.batch_size]) if rngs is not None else None
            out += decode_batch(self.cfg, self.params, self.tokenizer, chunk, self.batch_size,
                                max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, rng=rng,
                                pad_multiple=self.pad_multiple, mesh=self.mesh)
            if bar is not None:
                bar.update(len(chunk))
        return out

    def evaluate(self, task: Task, examples: Sequence[dict], max_length: int, max_new_tokens: int,
                 desc: str = "eval", progress: bool = False, mode: str = "generate") -> list[dict]:
        """One row per example with the model's answer (`generation`), its `prediction` and whether it is
        `correct`; score mode adds each label's log-probability (`logprobs`). Prompts longer than
        `max_length` tokens keep their end (the cue)."""
        from llm2llm_jax.console import progress_bar

        prompts = [self.tokenizer(task.prompt(ex), add_special_tokens=False)["input_ids"][-max_length:]
                   for ex in examples]
        bar = progress_bar(len(examples), desc, progress, unit="ex")
        if mode == "score":
            rows = self._score(task, examples, prompts, bar)
        else:
            rows = []
            for ex, (text, _) in zip(examples, self.generate(prompts, max_new_tokens, bar=bar)):
                pred = task.parse(text)
                rows.append({"id": ex["id"], "generation": text, "prediction": pred,
                             "correct": bool(task.score(pred, ex))})
        bar.close()
        return rows

    def _score(self, task: Task, examples, prompts, bar) -> list[dict]:
        candidates = candidate_tokens(task, self.tokenizer)
        rows = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start:start + self.batch_size]
            scores = score_batch(self.cfg, self.params, chunk, candidates, self.batch_size,
                                 self.tokenizer.pad_token_id, pad_multiple=self.pad_multiple, mesh=self.mesh)
            for ex, row in zip(examples[start:start + len(chunk)], scores):
                best = int(row.argmax())
                pred = task.labels[best]
                rows.append({"id": ex["id"], "generation": task.words[best], "prediction": pred,
                             "correct": bool(task.score(pred, ex)),
                             "logprobs": {label: round(float(v), 4) for label, v in zip(task.labels, row)}})
            if bar is not None:
                bar.update(len(chunk))
        return rows


def accuracy_summary(task: Task, examples: Sequence[dict], rows: Sequence[dict]) -> dict:
    """Counts behind an accuracy: correct of total with its 95% Wilson interval and, for classification, the
    accuracy per gold class and the confusion matrix ({gold: {predicted: count}}, 'none' for an answer that
    did not parse)."""
    from llm2llm_jax.stats import wilson_interval

    correct = sum(r["correct"] for r in rows)
    low, high = wilson_interval(correct, len(rows))
    out = {"correct": correct, "count": len(rows), "accuracy_low": round(low, 6), "accuracy_high": round(high, 6)}
    if task.is_classification:
        gold = {ex["id"]: ex["output"] for ex in examples}
        confusion: dict = {label: {} for label in task.labels}
        for r in rows:
            cell = confusion[gold[r["id"]]]
            pred = r["prediction"] if r["prediction"] is not None else "none"
            cell[pred] = cell.get(pred, 0) + 1
        out["per_class"] = {label: {"count": sum(c.values()), "accuracy": (c.get(label, 0) / sum(c.values()))
                                    if c else None} for label, c in confusion.items()}
        out["confusion"] = confusion
    return out
