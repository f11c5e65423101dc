"""One round's teacher requests as one batch job (Gemini's and OpenAI's Batch APIs), resumable after a kill.

The job is recorded in the run directory (teacher_batches/<requests' hash>.json: backend, model, job id, the
request keys) as soon as it is submitted, so a run killed while the job runs finds it again and polls it
instead of submitting, and paying for, the same requests twice. A job's answers go to the teacher cache one
by one as they are read, then its record is removed. A failed, expired or cancelled job is one line naming it;
its record is removed, so the same command submits the requests again. Requests the job answered with an
error are sent again one at a time (which also handles a server that refuses the reply's schema).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence

from llm2llm_jax.common import files
from llm2llm_jax.teacher.base import TeacherError, TeacherRequest


class BatchJobs:
    """Mixed into a backend that has a batch API (`_batch_submit`, `_batch_state`, `_batch_results`): with
    teacher.batch, one round's uncached requests go out as one batch job (`complete_as_batch`)."""

    supports_batch = True

    def complete_many(self, requests: Sequence[TeacherRequest]) -> list[str]:
        if requests and self.settings.batch:
            return complete_as_batch(self, requests)
        return super().complete_many(requests)


def job_path(backend: BatchJobs, keys: Sequence[str]) -> str:
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:24]
    return os.path.join(backend.batch_dir or "teacher_batches", f"{digest}.json")


def complete_as_batch(backend: BatchJobs, requests: Sequence[TeacherRequest]) -> list[str]:
    """Answers in request order: cached ones from the cache, the rest from one batch job (submitted, or found
    in the run directory from an earlier invocation, and polled until it ends)."""
    answers: list = [backend.cached(r) for r in requests]
    todo = [i for i, a in enumerate(answers) if a is None]
    if not todo:
        return answers
    sent = [backend.form(requests[i]) for i in todo]
    keys = [backend.key(r) for r in sent]
    path = job_path(backend, keys)
    for _ in todo:
        backend.budget.reserve()
    try:
        job = files.read_json(path) if files.exists(path) else None
        if job is None:
            job_id = backend._batch_submit(sent, keys)
            job = {
                "backend": backend.kind,
                "model": backend.settings.model,
                "job": job_id,
                "requests": len(keys),
                "submitted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "keys": keys,
            }
            files.write_json(path, job)
            backend.say(
                f"submitted {len(keys)} teacher requests as {backend.kind} batch job {job_id} (recorded in "
                f"{path}; a rerun polls it instead of submitting again)"
            )
        else:
            backend.say(
                f"polling {backend.kind} batch job {job['job']} (submitted {job['submitted']}) for "
                f"{len(keys)} requests"
            )
        state = _wait(backend, job)
        if state != "succeeded":
            files.remove(path)
            raise TeacherError(
                f"{backend.kind} batch job {job['job']} ended {state}; nothing of it was paid for "
                f"here. Rerun the same command to submit its {len(keys)} requests again (or set "
                f"teacher.batch=False)."
            )
        results = backend._batch_results(job["job"], sent, keys)
    except BaseException:
        for _ in todo:
            backend.budget.release()
        raise
    retry = []
    for i, request, result in zip(todo, sent, results):
        if isinstance(result, str):  # the job answered this request with an error
            backend.budget.release()
            retry.append(i)
            continue
        text, input_tokens, output_tokens = result
        backend.record(request, text, input_tokens, output_tokens)
        answers[i] = text
    files.remove(path)
    if retry:
        backend.say(
            f"{backend.kind} batch job {job['job']}: {len(retry)} of {len(keys)} requests came back with "
            f"an error; sending them one at a time"
        )
        for i in retry:
            answers[i] = backend.complete(requests[i])
    return answers


def _wait(backend: BatchJobs, job: dict) -> str:
    """Poll the job until it ends; its final state ('succeeded', 'failed', 'expired', 'cancelled')."""
    started, last_said = time.time(), 0.0
    while True:
        state, message = backend._batch_state(job["job"])
        if state != "pending":
            if state != "succeeded":
                backend.say(f"{backend.kind} batch job {job['job']}: {message}")
            return state
        now = time.time()
        if now - last_said >= 60:
            backend.say(f"{backend.kind} batch job {job['job']}: {message}, waited {int(now - started)} s")
            last_said = now
        time.sleep(max(0.01, backend.settings.batch_poll_seconds))
