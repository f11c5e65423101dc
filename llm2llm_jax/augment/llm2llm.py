"""LLM2LLM: the teacher writes new examples from the seed examples the student got wrong (the paper's method;
config.augment switches to every seed example, or lets kept examples be parents too: the paper's
ablations)."""

from __future__ import annotations

from llm2llm_jax.augment.base import Augmenter
from llm2llm_jax.common.seeds import stable_seed
from llm2llm_jax.teacher.base import TeacherRequest
from llm2llm_jax.teacher.prompts import build_messages, reply_schema, resolve_mode
from llm2llm_jax.teacher.replies import parse_reply


class Llm2llm(Augmenter):
    """The teacher writes `per_example` new examples from each chosen seed example (and the student's answer,
    in example mode), in `teacher.requests_per_example` separate requests, each with its own sampling seed."""

    uses_teacher = True
    sets_budget = True

    def _request(self, parent: dict, answer: str, k: int, mode: str, structured: bool, seed: int):
        task, same_label = self.ctx.task, self.ctx.config.teacher.same_label
        plain = TeacherRequest(*build_messages(task, parent, answer, k, same_label, mode), seed=seed)
        if not structured:
            return plain
        return TeacherRequest(
            *build_messages(task, parent, answer, k, same_label, mode, structured=True),
            seed=seed,
            schema=reply_schema(task, mode),
            plain=plain,
        )

    def expected_requests(self):
        """One request per seed example (its text and label; the sampling seed and, in example mode, the
        student's answer are left out)."""
        c = self.ctx.config
        mode = resolve_mode(c.teacher.mode, self.ctx.task)
        k = -(-self.per_example // c.teacher.requests_per_example)
        structured = self.ctx.teacher().structured
        return [self._request(ex, "", k, mode, structured, 0) for ex in self.ctx.seed_set]

    def candidates(self, i, chosen, predictions):
        c, task = self.ctx.config, self.ctx.task
        mode = resolve_mode(c.teacher.mode, task)
        n_requests = c.teacher.requests_per_example
        k = -(-self.per_example // n_requests)  # examples asked per request
        backend = self.ctx.teacher()
        requests, parents = [], []
        for ex in chosen:
            answer = predictions.get(ex["id"], {}).get("generation", "")
            for r in range(n_requests):
                # the first request's seed is the one a single request per example has always had
                seed = stable_seed(c.seed, "teacher", i, ex["id"], *((r,) if r else ()))
                requests.append(self._request(ex, answer, k, mode, backend.structured, seed))
                parents.append(ex)
        self.ctx.say(
            f"iteration {i}: asking the {backend.kind} teacher ({mode}) for {k} new example(s) in each of "
            f"{len(requests)} requests ({n_requests} per seed example, {len(chosen)} seed examples)"
        )
        before = dict(backend.stats)
        replies = backend.complete_many(requests)
        # retries, and how many waited as long as the server asked (Retry-After, RetryInfo)
        waits = {
            name: backend.stats.get(key, 0) - before.get(key, 0)
            for name, key in (("teacher_retries", "retries"), ("server_delayed", "server_delayed"))
        }
        cands, unparseable, made = [], [], {}
        for ex, reply in zip(parents, replies):
            parsed = parse_reply(reply, task, mode, multiline="\n" in ex["input"])[:k]
            if not parsed:
                unparseable.append(reply)
            for cand in parsed:
                j = made[ex["id"]] = made.get(ex["id"], -1) + 1
                if mode == "label_conditioned":  # the class is the parent's, by construction
                    cand["raw_output"] = task.verbalize(ex["output"])
                cands.append({**cand, **self._provenance(i, ex, j, "teacher")})
        if unparseable:
            sample = " ".join(unparseable[0].split())[:160]
            what = "numbered items" if mode == "label_conditioned" else "numbered Input/Output items"
            self.ctx.say(
                f"iteration {i}: warning: {len(unparseable)} of {len(replies)} teacher replies held no "
                f"{what} and were dropped as unparseable (first: {sample!r}); a stronger teacher.model, or "
                f"a lower teacher.temperature, usually follows the format"
            )
        return cands, {
            "requests": len(requests),
            "asked": len(requests) * k,
            "mode": mode,
            "unparseable": len(unparseable),
            "unparseable_sample": [r[:500] for r in unparseable[:3]],
            **{name: n for name, n in waits.items() if n},
        }  # spend: the run's ledger
