"""Before iteration 0: the most a run can ask of its teacher (requests, input and output tokens, dollars)."""

from __future__ import annotations

from llm2llm_jax.augment.base import Context
from llm2llm_jax.augment.methods import METHODS


def estimate_teacher_use(ctx: Context, iterations: int) -> dict:
    """The most a run can ask of its teacher: every candidate parent wrong in every round that augments (the
    llm2llm case; auggpt asks about all of them anyway), `requests_per_example` requests each, the judge once
    per new example asked for. Input tokens: the requests for every seed example, counted by the backend
    (exactly where it can: the local tokenizer, Gemini's countTokens) on the first and scaled by length for
    the rest."""
    c = ctx.config
    rounds = max(0, iterations - 1)
    cls = METHODS[c.method]
    if not cls.uses_teacher or not rounds or not ctx.seed_set:
        return {}
    method = cls(ctx)
    backend = ctx.teacher()
    k = -(-method.per_example // c.teacher.requests_per_example)
    sample = method.expected_requests()
    first, how = backend.count_input_tokens(backend.form(sample[0]))
    per_char = first / max(1, len(backend.form(sample[0]).prompt_text()))
    per_round = (
        sum(len(backend.form(r).prompt_text()) for r in sample) * per_char * c.teacher.requests_per_example
    )
    requests = len(ctx.seed_set) * c.teacher.requests_per_example * rounds
    input_tokens = per_round * rounds
    output_tokens = requests * backend.settings.max_output_tokens
    judged = requests * k if c.filters.verify == "judge" else 0
    if judged:  # a judge request is short: an input and the class list
        input_tokens += judged * 0.5 * first
        output_tokens += judged * backend.settings.max_output_tokens
    s = backend.settings
    cost = (input_tokens * s.price_input + output_tokens * s.price_output) / 1e6
    return {
        "requests": requests + judged,
        "judge_requests": judged,
        "input_tokens": int(input_tokens),
        "output_tokens": int(output_tokens),
        "cost_usd": round(cost, 4) if s.price_input or s.price_output else None,
        "counted": how,
        "rounds": rounds,
        "paid": backend.paid,
    }


def describe_estimate(est: dict, seeds: int) -> str:
    cost = (
        f", at most ${est['cost_usd']:.4f} at the configured prices"
        if est.get("cost_usd") is not None
        else " (set teacher.price_input and teacher.price_output, USD per million tokens, for a cost)"
        if est.get("paid")
        else ""
    )
    judge = f", {est['judge_requests']} of them the judge's" if est.get("judge_requests") else ""
    return (
        f"teacher estimate, at most (every one of the {seeds} seed examples wrong in each of {est['rounds']} "
        f"rounds): {est['requests']} requests{judge}, about {est['input_tokens']:,} input tokens "
        f"({est['counted']}) and at most {est['output_tokens']:,} output tokens{cost}"
    )
