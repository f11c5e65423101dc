"""The LLM2LLM controller: the iteration loop and the stages of one iteration, over a run directory.

    D0 = seed set                 M0 = base student
    for i in 0 .. n-1:
        Mi = finetune(M0, Di)     # from the base weights (train.init='base', the paper's) or from M(i-1)
                                  # ('previous'); reused when Di and the start equal an earlier iteration's
        evaluate Mi on the test set and on the SEED examples (augment.from_augmented: on all of Di)
        Ci = the examples the method augments (llm2llm: the ones Mi gets wrong; augment.parents='all': all)
        Ai = filter(augmenter(Ci))
        D(i+1) = Di + Ai

Run directory (config.workdir): config.json (the config snapshot; API keys stay in the environment),
data/{seed,test}.jsonl, shards/ (each iteration's training set, shards.py), iter_XXXX/ (train.json,
checkpoints/, predictions_{seed,test}.jsonl, augment.jsonl, augment_stats.json, metrics.json),
teacher_cache/ (one file per request: a rerun never pays twice), teacher_spend.json (what the run has paid, over
every invocation), run.lock (while a run works here), metrics.jsonl, report.md, report.png, dataset/ (the final
training set with provenance and a data card: export.py).

Every stage goes through `stages.run_stage` (skipped when its output exists, written atomically by process 0),
so after `kill -9` the same command continues from the last completed stage: one path for fresh and resumed runs.
"""

from __future__ import annotations

import os
import time
from typing import Sequence

import jax

from llm2llm_jax import augment, data as data_lib, files, parallel, results, rundir, settings, shards, stages, timing
from llm2llm_jax.console import say
from llm2llm_jax.errors import RunError
from llm2llm_jax.files import read_json, read_jsonl, write_json, write_jsonl
from llm2llm_jax.stages import run_stage
from llm2llm_jax.tasks import Task, get_task
from llm2llm_jax.teacher.backends import BudgetExceeded

class Llm2llmRun:
    """One run, driven by an ml_collections config (see configs/base.py), validated before anything happens.

    model: optional (cfg, params, tokenizer) to use instead of loading config.model (tests, notebooks).
    teacher: optional backend object to use instead of building config.teacher (tests).
    """

    def __init__(self, config, model=None, teacher=None):
        settings.validate(config, jax.devices(), model_given=model is not None)
        self.config = config
        self.workdir = files.absolute(config.workdir)
        self.task: Task = get_task(config.task, config.custom_task.to_dict() if config.task == "custom" else None)
        self._model, self._teacher, self._judge, self._mesh = model, teacher, None, None
        self._weights_id = None if model is not None else "config.model"  # a handed-in model is fingerprinted
        self.is_main = jax.process_index() == 0
        self.progress = bool(config.progress) and self.is_main
        self.iterations = 1 if config.method == "finetune" else config.iterations
        self.augmenter = None  # made once the seed set exists
        self.clock = timing.StageClock()  # each iteration's metrics carry its stage_seconds
        self.board = None  # TensorBoard scalars, opened when the run starts

    def mesh(self):
        if self._mesh is None:
            self._mesh = parallel.make_mesh(tuple(self.config.mesh))
        return self._mesh

    def path(self, *parts) -> str:
        return os.path.join(self.workdir, *parts)

    def iter_path(self, i: int, *parts) -> str:
        return self.path(f"iter_{i:04d}", *parts)

    # -- model and teacher (lazy: a finished run needs neither)
    def model(self):
        if self._model is None:
            from llm2llm_jax.model.loading import load_from_config

            with self.clock.timing("load"):
                cfg, params, tok = load_from_config(self.config.model, progress=self.progress,
                                                    devices=self.mesh().devices.flat)
            # Training, evaluation and the local teacher all run on this mesh: resolve 'auto' for it once.
            self._model = cfg.with_kernels_for(self.mesh().devices.flat), params, tok
        return self._model

    def prompt_format(self) -> str:
        """'plain' or 'chat', data.prompt_format resolved against the student's tokenizer (prompting.py)."""
        from llm2llm_jax import prompting

        return prompting.resolve(self.config.data.prompt_format, self.model()[2])

    def student_name(self) -> str:
        """The one string naming the student's checkpoint, as teacher.model would name it."""
        from llm2llm_jax.model.loading import model_name

        return model_name(self.config.model.source, self.config.model.path)

    def teacher(self):
        from llm2llm_jax.teacher.backends import SPEND_FILE, backend_from_config

        if self._teacher is None:
            self._teacher = backend_from_config(self.config.teacher, self.workdir, student=self.model, say=say,
                                                student_name=self.student_name())
        elif self._teacher.budget.path is None:  # a handed-in backend counts into this run's ledger too
            self._teacher.budget.attach(self.path(SPEND_FILE))
            self._teacher.batch_dir = self._teacher.batch_dir or self.path("teacher_batches")
        return self._teacher

    def judge(self):
        """The backend that verifies new examples: the teacher, or filters.judge_model (same kind and settings,
        greedy), sharing the teacher's cache and ledger."""
        from llm2llm_jax.teacher.backends import backend_from_config

        if self._judge is None:
            teacher = self.teacher()
            if not self.config.filters.judge_model and teacher.settings.temperature == 0:
                self._judge = teacher
            else:
                self._judge = backend_from_config(self.config.teacher, self.workdir, student=self.model,
                                                  model=self.config.filters.judge_model, say=say,
                                                  student_name=self.student_name())
                self._judge.budget = teacher.budget  # one ledger, one cap
        return self._judge

    # -- the student's two jobs
    def train(self, i: int, train_set: Sequence[dict]):
        from llm2llm_jax.train import finetune, hparams_from_config

        cfg, base_params, tok = self.model()
        c = self.config
        continued = c.train.init == "previous" and i > 0
        with self.clock.timing("fine-tune"):
            params, info = finetune(cfg, base_params, tok, self.task, train_set, hparams_from_config(c), self.mesh(),
                                lora_seed=settings.stable_seed(c.seed, "lora"), truncation=c.data.truncation,
                                checkpoint_dir=self.iter_path(i, "checkpoints"),
                                checkpoint_every=c.train.checkpoint_every, fmt=self.prompt_format(),
                                keep_trained=c.train.keep_checkpoints or c.train.init == "previous",
                                init_from=self.iter_path(self._model_of(i - 1), "checkpoints") if continued else "",
                                progress=self.progress, desc=f"iter {i} train",
                                say=lambda m: say(f"iteration {i}: {m}"),
                                on_step=lambda step, m: self.board and self.board.fine_tune_step(i, step, m))
        self.clock.add_flops("fine-tune", info.pop("flops"))
        return params, info

    def _model_of(self, i: int) -> int:
        """The iteration whose fine-tune is iteration i's model (itself, or the one whose result it reused)."""
        return read_json(self.iter_path(i, "train.json")).get("reused_from", i)

    def evaluate(self, params, examples: Sequence[dict], desc: str) -> list[dict]:
        from llm2llm_jax.predict import Predictor

        (cfg, _, tok), e = self.model(), self.config.eval
        with self.clock.timing("evaluation"):
            predictor = Predictor(cfg, params, tok, e.batch_size, mesh=self.mesh())
            rows = predictor.evaluate(self.task, examples, self.config.data.max_length, e.max_new_tokens, desc,
                                      self.progress, mode=e.mode, fmt=self.prompt_format())
        self.clock.add_flops("evaluation", predictor.flops)
        return rows

    # -- the loop
    def run(self) -> list[dict]:
        """Lock the run directory, check it belongs to this config, reach the teacher, then run every stage not
        done yet. A start that fails before the first stage output leaves the directory as it was."""
        from llm2llm_jax.board import RunBoard

        created = self.is_main and not files.exists(self.workdir)
        lock = rundir.WorkdirLock(self.workdir)
        try:
            with rundir.reporting_disk_faults("the run's files", self.workdir):
                stages.on_main(lambda: (files.makedirs(self.workdir), lock.acquire()))
                if lock.note:
                    say(lock.note)
                new_identity = settings.check_snapshot(self.config, self.workdir)
                stages.on_main(self._preflight)
                if new_identity and self.is_main and not lock.read_only:
                    settings.write_snapshot(self.config, self.workdir)
                self.board = RunBoard(self.workdir, self.config.tensorboard and self.is_main and not lock.read_only,
                                      say)
                return self._stages()
        finally:
            if self.board is not None:
                self.board.close()
            lock.release()
            if created:
                files.remove_empty_dir(self.workdir)

    def _preflight(self) -> None:
        """Fail before any work is written when the teacher cannot be used: its key, its model, its URL."""
        uses_teacher = augment.AUGMENTERS.get(self.config.method, augment.Augmenter).uses_teacher
        if uses_teacher and self.iterations > 1 and not self._done():
            self.teacher().check_reachable()

    def _done(self) -> bool:
        """Every iteration has its metrics, or one stopped the run: nothing is left to compute."""
        for i in range(self.iterations):
            if not self._finished(i):
                return False
            if read_json(self.iter_path(i, "metrics.json")).get("stopped"):
                return True
        return True

    def _stages(self) -> list[dict]:
        seed_set, test_set = self._data()
        test_eval = test_set[: self.config.data.test_limit] if self.config.data.test_limit else test_set
        cls = augment.AUGMENTERS.get(self.config.method)
        if cls is not None:
            self.augmenter = cls(augment.Context(self.task, self.config, seed_set, self.teacher, say, self.judge))
            if self.is_main and cls.uses_teacher and not self._done() and not files.exists(self.iter_path(0)):
                self._say_estimate(seed_set)
        self._write_shard(0, lambda: seed_set)
        for i in range(self.iterations):
            try:
                metrics = run_stage(f"iteration-{i}", lambda: self._finished(i),
                                    lambda: self._iteration(i, seed_set, test_set, test_eval),
                                    lambda m: write_json(self.iter_path(i, "metrics.json"), m),
                                    lambda: read_json(self.iter_path(i, "metrics.json")), collective=True)
            except BudgetExceeded as e:
                self.finish()
                raise RunError(f"{e}. Everything so far is saved in {self.workdir} (answers already paid for are "
                               f"cached); rerun the same command with a larger budget to continue.") from None
            if metrics.get("stopped"):
                break
        return self.finish()

    def _say_estimate(self, seed_set) -> None:
        """Before iteration 0: the most this run can ask of its teacher (requests, tokens, dollars)."""
        estimate = augment.estimate_teacher_use(self.augmenter.ctx, self.iterations)
        if estimate:
            say(augment.describe_estimate(estimate, len(seed_set)))

    def _finished(self, i: int) -> bool:
        """Iteration i has its metrics, and did not end a shorter run of this one: a finished run extended with
        more iterations goes on to augment from its old last iteration (its fine-tune is reused)."""
        path = self.iter_path(i, "metrics.json")
        return files.exists(path) and not (i + 1 < self.iterations and "note" in read_json(path))

    def _iteration(self, i: int, seed_set, test_set, test_eval) -> dict:
        start = time.time()
        train_set = shards.read_iteration(self.path("shards"), i)
        pool = train_set if self.config.augment.from_augmented else seed_set  # the candidate parents
        info, pool_preds, test_preds = self._fit_and_evaluate(i, train_set, pool, test_eval)
        by_id = {p["id"]: p for p in pool_preds}
        wrong = [ex for ex in seed_set if not by_id[ex["id"]]["correct"]]
        from llm2llm_jax.predict import accuracy_summary

        summary = accuracy_summary(self.task, test_eval, test_preds)
        m = {"iteration": i, "method": self.config.method, "train_size": len(train_set),
             "seed_accuracy": 1 - len(wrong) / len(seed_set),
             "test_accuracy": summary["correct"] / max(1, summary["count"]),
             "test_accuracy_low": summary["accuracy_low"], "test_accuracy_high": summary["accuracy_high"],
             "test_count": summary["count"], "seed_wrong": len(wrong), "train_final_loss": info.get("final_loss"),
             "new_examples": 0}
        if "per_class" in summary:
            m["test_per_class"], m["test_confusion"] = summary["per_class"], summary["confusion"]
        for field in ("reused_from", "shared_from"):
            if field in info:
                m[field] = info[field]
        say(f"iteration {i}: test accuracy {m['test_accuracy']:.2%}, seed accuracy {m['seed_accuracy']:.2%} "
            f"({len(wrong)} of {len(seed_set)} seed examples wrong), train set {len(train_set)}")
        pool_wrong = [ex for ex in pool if not by_id[ex["id"]]["correct"]]
        chosen = self.augmenter.parents(i, pool_wrong, pool) if self.augmenter else []
        if i + 1 == self.iterations or self.augmenter is None:
            m["note"] = "last iteration: no augmentation"
        elif not chosen:
            m["stopped"] = ("augment.max_parents allows no parent at this iteration"
                            if augment.max_parents_at(self.config, i) == 0 and pool_wrong
                            else "no seed or kept example is wrong" if self.config.augment.from_augmented
                            else "no seed example is wrong")
            say(f"iteration {i}: {m['stopped']}; stopping early")
        else:
            kept, stats = self._augment(i, train_set, test_set, chosen, by_id)
            m.update(new_examples=len(kept), parents=len(chosen), teacher_requests=stats.get("requests", 0),
                     candidates=stats.get("candidates", 0), drops=stats.get("drops", {}))
            if "asked" in stats:
                m.update(asked=stats["asked"], teacher_yield=round(len(kept) / max(1, stats["asked"]), 4))
            if stats.get("judge_requests"):
                m["judge_requests"] = stats["judge_requests"]
            say(f"iteration {i}: {describe_yield(m)}")
            self._write_shard(i + 1, lambda: list(train_set) + kept)
            self._stop_if_nothing_kept(i, kept, m)
        m["seconds"] = round(time.time() - start, 1)
        # this iteration's, and the data and first shard before iteration 0
        m["stage_seconds"], m["stage_flops"] = self.clock.take(), self.clock.take_flops()
        if self.board is not None:
            self.board.iteration(m)
        return m

    # -- the stages
    def _data(self) -> tuple[list[dict], list[dict]]:
        seed_file, test_file = self.path("data", "seed.jsonl"), self.path("data", "test.jsonl")

        def compute():
            seed_set, test, dropped = data_lib.seed_and_test_sets(self.config.data, self.task, self.config.seed)
            if dropped:
                say(f"dropped {dropped} seed examples that duplicate test examples")
            return seed_set, test

        return run_stage("data", [seed_file, test_file], compute,
                         lambda value: (write_jsonl(test_file, value[1]), write_jsonl(seed_file, value[0])),
                         lambda: (read_jsonl(seed_file), read_jsonl(test_file)))

    def _write_shard(self, i: int, examples) -> None:
        shard_dir = self.path("shards")

        def write(rows):
            with self.clock.timing("writes"):
                shards.write_iteration(shard_dir, i, rows)

        run_stage(f"shard-{i}", lambda: shards.is_written(shard_dir, i), examples, write, lambda: None)

    def _fit_and_evaluate(self, i: int, train_set, pool, test_eval):
        """(train info, predictions on the candidate parents `pool`, test predictions): fine-tune and evaluate,
        or reuse the result of an earlier iteration that trained on the same data with the same settings.
        The parents' predictions go to predictions_seed.jsonl (with augment.from_augmented, the kept examples'
        too)."""
        paths = [self.iter_path(i, n) for n in ("train.json", "predictions_seed.jsonl", "predictions_test.jsonl")]

        def compute():
            self._weights_id = self._weights_id or results.fingerprint(self._model)
            start = self._weights_id
            if self.config.train.init == "previous" and i > 0:  # the model it continues is part of the result
                start += "+" + read_json(self.iter_path(i - 1, "train.json"))["result_key"]
            key = results.result_key(self.config, train_set, start)
            earlier = parallel.broadcast_json(results.earlier_with(key, self.iter_path, i))
            if earlier is not None:
                say(f"iteration {i}: same training data and settings as iteration {earlier}; reusing its fine-tuned "
                    f"result (no training)")
                info, seed_preds, test_preds = self._result(earlier)
                return dict(info, reused_from=earlier), seed_preds, test_preds
            shared = self.config.shared_results if self.config.train.init == "base" else ""
            if shared and parallel.broadcast_json(results.has_shared(shared, key)):
                info, seed_preds, test_preds = results.read_shared(shared, key)
                say(f"iteration {i}: same training data and settings as {info['source']}; reusing its fine-tuned "
                    f"result (no training)")
                return dict(info, shared_from=info.pop("source")), seed_preds, test_preds
            start_from = ("the base weights" if self.config.train.init == "base" or i == 0
                          else f"iteration {self._model_of(i - 1)}'s model")
            say(f"iteration {i}: fine-tuning from {start_from} on {len(train_set)} examples")
            params, info = self.train(i, train_set)
            test_preds = self.evaluate(params, test_eval, f"iter {i} eval test")
            value = dict(info, result_key=key), self.evaluate(params, pool, f"iter {i} eval seed"), test_preds
            if shared and self.is_main:
                results.write_shared(shared, key, value, source=f"{self.workdir} iteration {i}")
            return value

        def write(value):
            write_jsonl(paths[2], value[2])
            write_jsonl(paths[1], value[1])
            write_json(paths[0], value[0])

        result = run_stage(f"fit-{i}", paths, compute, write, lambda: self._result(i), collective=True)
        if self.is_main and not self.config.train.keep_checkpoints:
            self._prune_checkpoints(i)
        return result

    def _prune_checkpoints(self, i: int) -> None:
        """Remove the checkpoints of iterations up to i that nothing needs any more: all of them, or with
        train.init='previous' all but the model the next iteration starts from."""
        needed = self._model_of(i) if self.config.train.init == "previous" else None
        for j in range(i + 1):
            if j != needed:
                files.rmtree(self.iter_path(j, "checkpoints"))

    def _result(self, i: int) -> tuple[dict, list[dict], list[dict]]:
        return (read_json(self.iter_path(i, "train.json")), read_jsonl(self.iter_path(i, "predictions_seed.jsonl")),
                read_jsonl(self.iter_path(i, "predictions_test.jsonl")))

    def _augment(self, i: int, train_set, test_set, chosen, by_id) -> tuple[list[dict], dict]:
        aug_file, stats_file = self.iter_path(i, "augment.jsonl"), self.iter_path(i, "augment_stats.json")

        def compute():
            before = self._teacher_flops()
            with self.clock.timing("teacher"):
                value = self.augmenter.augment(
                    i, chosen, by_id, augment.make_filter(self.task, self.config, train_set, test_set))
            self.clock.add_flops("teacher", self._teacher_flops() - before)
            return value

        return run_stage(f"augment-{i}", [aug_file, stats_file], compute,
                         lambda value: (write_json(stats_file, value[1]), write_jsonl(aug_file, value[0])),
                         lambda: (read_jsonl(aug_file), read_json(stats_file)))

    def _teacher_flops(self) -> float:
        """FLOPs this process's teacher has computed (a local one; none before it is built, or for a remote one)."""
        return getattr(self._teacher, "flops", 0.0)

    def _stop_if_nothing_kept(self, i: int, kept: Sequence[dict], metrics: dict) -> None:
        """Stop after teacher.max_empty_rounds rounds in a row that kept nothing: more would retrain on the
        same data and ask the same teacher the same questions."""
        rows = [read_json(self.iter_path(j, "metrics.json")) for j in range(i)] + [metrics]
        empty = next((n for n, m in enumerate(reversed(rows)) if m.get("new_examples")), len(rows))
        if not kept and empty >= self.config.teacher.max_empty_rounds:
            metrics["stopped"] = f"no new example kept in {empty} rounds in a row"
            say(f"iteration {i}: stopping: {metrics['stopped']} (teacher.max_empty_rounds); more would train on the "
                f"same data. Use a stronger teacher (teacher.kind, teacher.model) or more examples per request "
                f"(teacher.per_example); {self.iter_path(i, 'augment_stats.json')} says what was dropped.")

    def finish(self) -> list[dict]:
        from llm2llm_jax.report import read_rows, write_outputs

        rows = read_rows(self.workdir)
        if self.is_main:
            from llm2llm_jax.export import write_dataset

            write_outputs(self.workdir, rows, self.config)
            with rundir.reporting_disk_faults("the exported dataset", self.path("dataset")):
                write_dataset(self.workdir, rows, self.config)
        return rows


def describe_yield(m: dict) -> str:
    """One iteration's teacher yield as a log line: kept of asked, requests, parsed, drops by reason."""
    dropped = ", ".join(f"{k} {v}" for k, v in m.get("drops", {}).items() if v) or "none"
    asked = (f" of {m['asked']} asked ({m['teacher_yield']:.0%} yield; {m.get('teacher_requests', 0)} requests, "
             f"{m.get('candidates', 0)} parsed)" if "asked" in m else f" of {m.get('candidates', 0)} new examples")
    judge = f"; {m['judge_requests']} judge requests" if m.get("judge_requests") else ""
    return f"kept {m['new_examples']}{asked}{judge} (dropped: {dropped})"


def run_from_config(config, model=None, teacher=None) -> list[dict]:
    return Llm2llmRun(config, model=model, teacher=teacher).run()
