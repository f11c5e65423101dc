"""Verification by a judge (`filters.verify=judge`): each kept example is answered again on its own, and the
ones the judge disagrees with are dropped as `unverified`."""

from __future__ import annotations

from llm2llm_jax.common.seeds import stable_seed
from llm2llm_jax.teacher.base import TeacherRequest
from llm2llm_jax.teacher.prompts import judge_messages, judge_schema
from llm2llm_jax.teacher.replies import parse_judgement

MODES = ("none", "judge")  # filters.verify


def verify(ctx, i: int, kept: list[dict], filt) -> tuple[list[dict], int, int]:
    """(the examples the judge agrees with, judge requests, how many it disagreed with). The judge answers
    each input on its own: its class without the one intended (classification), or a solution whose final
    number must equal the example's (numeric tasks). An input it rejects no longer counts as kept for
    deduplication."""
    task, c = ctx.task, ctx.config
    judge = ctx.judge()
    requests = []
    for ex in kept:
        seed = stable_seed(c.seed, "judge", i, ex["id"])
        plain = TeacherRequest(*judge_messages(task, ex["input"]), seed=seed)
        requests.append(
            TeacherRequest(
                *judge_messages(task, ex["input"], structured=True),
                seed=seed,
                schema=judge_schema(task),
                plain=plain,
            )
            if judge.structured
            else plain
        )
    ctx.say(
        f"iteration {i}: asking the {judge.kind} judge ({judge.settings.model}) about {len(kept)} new "
        f"example(s)"
    )
    verdicts = judge.complete_many(requests)
    agreed = []
    for ex, verdict in zip(kept, verdicts):
        if parse_judgement(verdict, task) == task.gold(ex):
            agreed.append(ex)
        else:
            filt.forget(ex["input"])
    return agreed, len(requests), len(kept) - len(agreed)
