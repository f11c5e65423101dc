"""One predictor for every generation a run makes: the student's evaluation and the local teacher.

It prepares the weights for decoding once (`decode.inference_weights`), cuts prompts into fixed-size
batches (one compilation), and for evaluation parses and scores each answer with the task.
"""

from __future__ import annotations

from typing import Optional, Sequence

from llm2llm_jax.decode import decode_batch, inference_weights
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
                 desc: str = "eval", progress: bool = False) -> list[dict]:
        """Greedy answers to the task's prompts: one row per example with its generation, parsed prediction
        and whether it is correct. Prompts longer than `max_length` tokens keep their end (the cue)."""
        from llm2llm_jax.console import progress_bar

        prompts = [self.tokenizer(task.prompt(ex), add_special_tokens=False)["input_ids"][-max_length:]
                   for ex in examples]
        bar = progress_bar(len(examples), desc, progress, unit="ex")
        decoded = self.generate(prompts, max_new_tokens, bar=bar)
        bar.close()
        rows = []
        for ex, (text, _) in zip(examples, decoded):
            pred = task.parse(text)
            rows.append({"id": ex["id"], "generation": text, "prediction": pred, "correct": bool(task.score(pred, ex))})
        return rows
