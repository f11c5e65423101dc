"""The LLM2LLM controller: the method's loop over the stages of a run directory.

    D0 = seed set                 M0 = base student
    for i in 0 .. n-1:
        Mi = finetune(M0, Di)     # train.init: from the base weights (the paper's) or from M(i-1);
                                  # reused when Di and the start equal an earlier iteration's
        evaluate Mi on the test set and on the SEED examples (augment.from_augmented: on all of Di)
        Ci = the parents the method chooses (llm2llm: the ones Mi gets wrong)
        Ai = filter(augmenter(Ci))
        D(i+1) = Di + Ai

Every stage goes through `stages.run_stage` (skipped when its output exists, written atomically by process 0),
so after `kill -9` the same command continues from the last completed stage: one path for fresh and resumed
runs. The run directory's files are listed in run/layout.py. Stage timing, TensorBoard and progress lines
attach as hooks (run/hooks.py); where a fine-tune starts is the init policy's (run/init_policy.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import jax

from llm2llm_jax.augment.base import Context, make_filter
from llm2llm_jax.augment.methods import METHODS
from llm2llm_jax.common import files
from llm2llm_jax.common.console import say
from llm2llm_jax.common.disk_faults import reporting_disk_faults
from llm2llm_jax.common.errors import RunError
from llm2llm_jax.config.checks import validate
from llm2llm_jax.data import shards
from llm2llm_jax.data.export import write_dataset
from llm2llm_jax.data.sources import has_dev
from llm2llm_jax.data.tasks import task_from_config
from llm2llm_jax.run import metrics, steps
from llm2llm_jax.run.board import RunBoard
from llm2llm_jax.run.deliver import deliver
from llm2llm_jax.run.hooks import Hook, Hooks
from llm2llm_jax.run.init_policy import init_policy
from llm2llm_jax.run.keeper import StudentKeeper
from llm2llm_jax.run.layout import RunDirectory
from llm2llm_jax.run.lock import locked_run_directory
from llm2llm_jax.run.report import read_rows, write_outputs
from llm2llm_jax.run.student_jobs import StudentJobs
from llm2llm_jax.run.timing import StageTimer
from llm2llm_jax.teacher.budget import BudgetExceeded
from llm2llm_jax.teacher.factory import Teachers
from llm2llm_jax.teacher.filters import applied_filters
from llm2llm_jax.teacher.prompts import resolve_mode


class Llm2llmRun:
    """One run, driven by an ml_collections config (see configs/base.py), checked before anything happens.

    model: optional (cfg, params, tokenizer) to use instead of loading config.model (tests, notebooks).
    teacher: optional backend object to use instead of building config.teacher (tests).
    hooks: more observers of the run (run/hooks.py), each called after the stage timer.
    """

    def __init__(self, config, model=None, teacher=None, hooks: Sequence[Hook] = ()):
        validate(config, jax.devices(), model_given=model is not None, teacher_given=teacher)
        self.init = init_policy(config)
        self.config, self.dir = config, RunDirectory(config.workdir, dev=has_dev(config.data))
        self.workdir = self.dir.root
        self.task = task_from_config(config)
        self.is_main = jax.process_index() == 0
        self.method = METHODS[config.method]
        self.iterations = config.iterations if self.method.augments else 1
        self.hooks = Hooks([StageTimer(config.model.dtype), *hooks])
        self.student = StudentJobs(
            config, self.task, self.hooks, model, progress=bool(config.progress) and self.is_main
        )
        self.teachers = Teachers(
            config, self.workdir, self.student.model, self.student.name(), say, given=teacher
        )
        self.keeper = StudentKeeper(self.dir) if config.export.student else None
        self.augmenter = None  # made once the seed set exists

    # -- the student's two jobs
    def train(self, i: int, train_set: Sequence[dict]):
        # The sets the student is evaluated on are known now, and the teacher requests the seed examples
        # can lead to: their programs compile while it trains.
        dev = self.data.dev if self.dir.has_dev else ()
        self.student.compile_evaluation_ahead([self.test_eval, dev, self.candidate_parents(train_set)])
        if self.method.uses_teacher and i + 1 < self.iterations:
            self.teachers.teacher().expect(self.augmenter.expected_requests())
        keep = self.config.train.keep_checkpoints or self.init.keeps_trained
        return self.student.train(
            i,
            train_set,
            self.init.start(i, self.dir),
            keep,
            self.dir.iter_path(i, "checkpoints"),
            self.data.dev,
        )

    def evaluate(self, params, examples: Sequence[dict], desc: str) -> list[dict]:
        return self.student.evaluate(params, examples, desc)

    def candidate_parents(self, train_set: Sequence[dict]) -> Sequence[dict]:
        """The examples whose wrong answers the teacher may be asked about: the seed set, or the whole
        training set with config.augment.from_augmented."""
        return train_set if self.config.augment.from_augmented else self.data.seed

    # -- the loop
    def run(self) -> list[dict]:
        """Lock the run directory, check it belongs to this config, reach the teacher, then run every stage
        not done yet."""
        with locked_run_directory(self.workdir, self.config, self._preflight, self.is_main) as lock:
            try:
                writes = self.config.tensorboard and self.is_main and not lock.read_only
                self.hooks.add(RunBoard(self.workdir, writes, say))
                return self._loop()
            finally:
                self.hooks.close()

    def _preflight(self) -> None:
        """Fail before any work is written when the run directory holds more iterations than asked for (a
        summary would show them all), or the teacher cannot be used: its key, its model, its URL."""
        held = 0
        while self.dir.has_metrics(held):
            held += 1
        if held > self.iterations:
            raise RunError(
                f"{self.workdir} holds {held} finished iterations, more than config.iterations="
                f"{self.iterations} asks for: rerun with --config.iterations={held} to see the run (or more "
                f"to continue it), or set config.workdir to a new directory"
            )
        if self.method.uses_teacher and self.iterations > 1 and not self._done():
            self.teachers.teacher().check_reachable()

    def _done(self) -> bool:
        """Every iteration has its metrics, or one stopped the run: nothing is left to compute."""
        for i in range(self.iterations):
            if not self._finished(i):
                return False
            if self.dir.metrics(i).get("stopped"):
                return True
        return True

    def _finished(self, i: int) -> bool:
        """Iteration i has its metrics, and did not end a shorter run of this one: a finished run extended
        with more iterations goes on to augment from its old last iteration (its fine-tune is reused)."""
        return self.dir.has_metrics(i) and not (i + 1 < self.iterations and "note" in self.dir.metrics(i))

    def _loop(self) -> list[dict]:
        self.data = data = steps.data(self.dir, self.config, self.task)
        limit = self.config.data.test_limit
        self.test_eval = data.test[:limit] if limit else data.test
        self.hooks.add(metrics.ProgressLines(say, len(data.seed)))
        self.augmenter = self.method(
            Context(
                self.task, self.config, data.seed, self.teachers.teacher, say, self.teachers.judge, data.dev
            )
        )
        if self.is_main and not self._done() and not files.exists(self.dir.iter_path(0)):
            self.hooks.started(self)
        steps.shard(self.dir, self.hooks, 0, lambda: data.seed)
        for i in range(self.iterations):
            try:
                row = self._iteration_stage(i)
            except BudgetExceeded as e:
                self.finish()
                raise RunError(
                    f"{e}. Everything so far is saved in {self.workdir} (answers already paid for are "
                    f"cached); rerun the same command with a larger budget to continue."
                ) from None
            if row.get("stopped"):
                break
        return self.finish()

    def _iteration_stage(self, i: int) -> dict:
        finished = lambda: self._finished(i)  # noqa: E731
        return steps.iteration(self.dir, i, finished, lambda: self._iteration(i))

    def _iteration(self, i: int) -> dict:
        """Fine-tune and evaluate, choose the parents, augment, merge: iteration i, as its metrics row."""
        start, data = time.time(), self.data
        train_set = shards.read_iteration(self.dir.path("shards"), i)
        pool = self.candidate_parents(train_set)
        fit = steps.fit_and_evaluate(self, i, train_set, pool, self.test_eval, data.dev)
        by_id = {p["id"]: p for p in fit.parents}
        wrong = [ex for ex in data.seed if not by_id[ex["id"]]["correct"]]
        m = metrics.evaluation_row(
            i, self.config.method, train_set, data, wrong, self.task, self.test_eval, fit
        )
        self.hooks.evaluated(i, m)
        pool_wrong = [ex for ex in pool if not by_id[ex["id"]]["correct"]]
        if i + 1 == self.iterations or not self.method.augments:
            m["note"] = "last iteration: no augmentation"
        elif not (parents := self.augmenter.parents(i, pool_wrong, pool)):
            m["stopped"] = metrics.no_parents_reason(self.config, i, bool(pool_wrong))
            say(f"iteration {i}: {m['stopped']}; stopping early")
        else:
            make = lambda: self._augment(i, train_set, parents, by_id)  # noqa: E731
            kept, stats = steps.augment(self.dir, i, make)
            metrics.add_augmentation(m, kept, len(parents), stats)
            self.hooks.augmented(i, m)
            steps.shard(self.dir, self.hooks, i + 1, lambda: list(train_set) + kept)  # D(i+1) = D(i) + A(i)
            metrics.stop_when_nothing_kept(self.dir, self.config, kept, m)
        m["seconds"] = round(time.time() - start, 1)
        self.hooks.iteration_done(m)
        return m

    def _augment(self, i: int, train_set, parents, by_id) -> tuple[list[dict], dict]:
        """The method's new examples from `parents`, through the iteration's filter (the teacher's time and
        FLOPs counted)."""
        before = self.teachers.flops
        with self.hooks.stage("teacher"):
            filt = make_filter(self.task, self.config, train_set, self.data.test, self.data.dev)
            value = self.augmenter.augment(i, parents, by_id, filt)
        self.hooks.computed("teacher", self.teachers.flops - before)
        return value

    def finish(self) -> list[dict]:
        """The report and the exported dataset of the finished iterations (written by process 0), and the
        selected student's export; their rows."""
        rows = read_rows(self.workdir)
        if self.is_main:
            write_outputs(self.workdir, rows, self.config)
            with reporting_disk_faults("the exported dataset", self.dir.path("dataset")):
                write_dataset(
                    self.workdir,
                    rows,
                    self.config,
                    resolve_mode(self.config.teacher.mode, self.task),
                    applied_filters(self.task, self.config),
                )
        deliver(self, rows)
        return rows


def run_from_config(config, model=None, teacher=None) -> list[dict]:
    return Llm2llmRun(config, model=model, teacher=teacher).run()
