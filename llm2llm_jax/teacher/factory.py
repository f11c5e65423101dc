"""Making a run's teacher and judge: the registry of backends by `teacher.kind`, and their construction from
the config over the run directory's cache and spend ledger."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from llm2llm_jax.common.sections import build
from llm2llm_jax.teacher.base import Backend, TeacherError, TeacherSettings
from llm2llm_jax.teacher.budget import SPEND_FILE
from llm2llm_jax.teacher.cache import DiskCache
from llm2llm_jax.teacher.gemini import GeminiBackend
from llm2llm_jax.teacher.local import STUDENT, LocalBackend
from llm2llm_jax.teacher.openai_chat import OpenAIBackend

BACKENDS: dict[str, type[Backend]] = {"gemini": GeminiBackend, "openai": OpenAIBackend, "local": LocalBackend}


def make_backend(settings: TeacherSettings, cache: DiskCache | None = None, **extra) -> Backend:
    if settings.kind not in BACKENDS:
        raise TeacherError(f"teacher.kind={settings.kind!r}: choose one of {sorted(BACKENDS)}")
    return BACKENDS[settings.kind](settings, cache, **extra)


def backend_from_config(
    section, run_dir: str, student=None, model: str = None, say=print, student_name: str = "smollm2"
) -> Backend:
    """The backend for a run's `config.teacher` section, answering from (and into) the cache in
    run_dir/teacher_cache and counting its spend in the run's ledger, run_dir/teacher_spend.json.

    student: a function returning the run's (cfg, params, tokenizer); teacher.kind='local' with model '',
    'student' or the student's own name (`student_name`, see loading.model_name) samples the untrained base
    student (adapters are added per fine-tune, never loaded); any other model is loaded for the teacher.
    model: another model of the same kind and settings (a judge), answered greedily.
    """
    settings = build(TeacherSettings, section)
    if model is not None:  # a judge answers what it is sure of: greedy decoding
        settings = dataclasses.replace(settings, model=model or settings.model, temperature=0.0, top_p=1.0)
    extra = {}
    backend_cls = BACKENDS.get(settings.kind)
    if (
        backend_cls is LocalBackend
        and student is not None
        and LocalBackend.samples_student(settings.model, student_name)
    ):
        cfg, params, tok = student()
        extra["model"] = (cfg.replace(lora_rank=0), params, tok)
        settings = dataclasses.replace(
            settings, model=student_name if settings.model in STUDENT else settings.model
        )
    backend = make_backend(settings, DiskCache(os.path.join(run_dir, "teacher_cache")), **extra)
    backend.budget.attach(os.path.join(run_dir, SPEND_FILE))
    backend.batch_dir = os.path.join(run_dir, "teacher_batches")
    backend.say = say
    return backend


class Teachers:
    """A run's teacher and judge, each made on first use (a finished run needs neither).

    given: a backend the caller hands the run instead of `config.teacher` (tests); it counts into the run's
    ledger too. student: a function returning the run's (cfg, params, tokenizer), for a local teacher that
    samples the student's base weights.
    """

    def __init__(
        self,
        config,
        run_dir: str,
        student: Callable,
        student_name: str,
        say=print,
        given: Backend | None = None,
    ):
        self.config, self.run_dir, self.student, self.student_name, self.say = (
            config,
            run_dir,
            student,
            student_name,
            say,
        )
        self._teacher, self._judge = given, None

    def teacher(self) -> Backend:
        if self._teacher is None:
            self._teacher = backend_from_config(
                self.config.teacher,
                self.run_dir,
                student=self.student,
                say=self.say,
                student_name=self.student_name,
            )
        elif self._teacher.budget.path is None:  # a handed-in backend counts into this run's ledger too
            self._teacher.budget.attach(os.path.join(self.run_dir, SPEND_FILE))
            self._teacher.batch_dir = self._teacher.batch_dir or os.path.join(self.run_dir, "teacher_batches")
        return self._teacher

    def judge(self) -> Backend:
        """The backend that verifies new examples: the teacher, or filters.judge_model (same kind and
        settings, greedy), sharing the teacher's cache and ledger."""
        if self._judge is None:
            teacher = self.teacher()
            if not self.config.filters.judge_model and teacher.settings.temperature == 0:
                self._judge = teacher
            else:
                self._judge = backend_from_config(
                    self.config.teacher,
                    self.run_dir,
                    student=self.student,
                    model=self.config.filters.judge_model,
                    say=self.say,
                    student_name=self.student_name,
                )
                self._judge.budget = teacher.budget  # one ledger, one cap
        return self._judge

    @property
    def flops(self) -> float:
        """FLOPs this process's teacher has computed (a local one; none before it is built, or for a remote
        one)."""
        return getattr(self._teacher, "flops", 0.0)
