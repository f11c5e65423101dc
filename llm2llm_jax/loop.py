"""The LLM2LLM controller: stages, run directory, resume, metrics and report.

    D0 = seed set                 M0 = base student
    for i in 0 .. n-1:
        Mi = finetune(M0, Di)     # always from the base weights
        evaluate Mi on the test set and on the SEED examples
        Wi = seed examples Mi gets wrong (never augmented ones)
        Ai = filter(teacher(Wi))
        D(i+1) = Di + Ai

Run directory (config.workdir):
    config.json            the config snapshot (API keys are read from the environment, never stored)
    data/seed.jsonl, data/test.jsonl
    shards/                per-iteration tfds array_record training sets (shards.py)
    iter_XXXX/             train.json, checkpoints/, predictions_{seed,test}.jsonl, augment.jsonl, metrics.json
    teacher_cache/         one file per teacher request (a rerun never pays twice)
    metrics.jsonl, report.md, report.png

Every stage writes atomically and is skipped when its output exists, so `kill -9` at any point and
the same command again continues from the last completed stage. With multiple JAX processes, only
process 0 calls the teacher and writes shared files; the others receive its results by broadcast.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from typing import Sequence

import jax

from llm2llm_jax import data as data_lib
from llm2llm_jax import parallel, shards
from llm2llm_jax.files import atomic_open, read_json, read_jsonl, write_json, write_jsonl
from llm2llm_jax.tasks import Task, get_task
from llm2llm_jax.teacher.backends import BudgetExceeded

METHODS = ("llm2llm", "finetune", "auggpt", "eda")
# Config fields that may change between a run and its resumption without changing its results.
RESUMABLE_FIELDS = ("iterations", "workdir", "teacher.concurrency", "teacher.timeout", "teacher.max_calls",
                    "teacher.max_tokens", "teacher.max_attempts", "teacher.initial_delay", "teacher.max_delay",
                    "progress", "compile_cache_dir")


class RunError(RuntimeError):
    """A run that cannot start or continue as configured; the message says what to do."""


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def stable_seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "little") & 0x7FFFFFFF


def say(msg: str) -> None:
    if jax.process_index() == 0:
        print(f"[llm2llm] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- EDA baseline
def eda_edit(text: str, rng: random.Random, alpha: float = 0.1) -> str:
    """One EDA-style variant: random swap, deletion and insertion of words from the sentence itself.

    (EDA's synonym replacement needs WordNet, which is not available offline, so it is left out.)
    """
    words = text.split()
    if len(words) < 2:
        return text
    n = max(1, int(alpha * len(words)))
    op = rng.choice(("swap", "delete", "insert"))
    words = list(words)
    for _ in range(n):
        if op == "swap":
            i, j = rng.sample(range(len(words)), 2)
            words[i], words[j] = words[j], words[i]
        elif op == "delete" and len(words) > 2:
            words.pop(rng.randrange(len(words)))
        else:
            words.insert(rng.randrange(len(words) + 1), rng.choice(words))
    return " ".join(words)


# ---------------------------------------------------------------------------- the controller
class Llm2llmRun:
    """One run, driven by an ml_collections config (see configs/base.py).

    model: optional (cfg, params, tokenizer) to use instead of loading config.model (tests, notebooks).
    teacher: optional backend object to use instead of building config.teacher (tests).
    """

    def __init__(self, config, model=None, teacher=None):
        self.config = config
        self.workdir = os.path.abspath(config.workdir)
        self.method = config.method
        if self.method not in METHODS:
            raise RunError(f"config.method={self.method!r}: choose one of {METHODS}")
        self.task: Task = get_task(config.task, config.get("custom_task") and config.custom_task.to_dict())
        self._model = model
        self._teacher = teacher
        self._pool = None  # teacher.kind='pool': unused training rows, grouped by label
        self.is_main = jax.process_index() == 0
        self.progress = bool(config.get("progress", True)) and self.is_main

    def mesh(self):
        if getattr(self, "_mesh", None) is None:
            self._mesh = parallel.make_mesh(tuple(self.config.mesh))
        return self._mesh

    # -- paths
    def path(self, *parts) -> str:
        return os.path.join(self.workdir, *parts)

    def iter_path(self, i: int, *parts) -> str:
        return self.path(f"iter_{i:04d}", *parts)

    # -- config snapshot
    def _check_config(self) -> None:
        snapshot = self.config.to_dict()
        target = self.path("config.json")
        if os.path.exists(target):
            old = _flatten(read_json(target))
            new = _flatten(json.loads(json.dumps(snapshot, default=str)))
            changed = sorted(k for k in set(old) | set(new)
                             if old.get(k) != new.get(k) and not any(k == f or k.startswith(f + ".")
                                                                    for f in RESUMABLE_FIELDS))
            if changed:
                raise RunError(f"{self.workdir} holds a run with another config (differs in {changed[:6]}). "
                               f"Resume it with the same config, or choose another --config.workdir.")
        if self.is_main:
            write_json(target, json.loads(json.dumps(snapshot, default=str)))

    # -- model and teacher (lazy: a finished run needs neither)
    def model(self):
        if self._model is None:
            from llm2llm_jax.model.loading import load_pretrained

            m = self.config.model
            cfg, params, tok = load_pretrained(
                m.source, m.path, dtype=m.dtype, param_dtype=m.param_dtype, scan_layers=m.scan_layers,
                remat_policy=m.remat_policy, lora_rank=m.lora_rank, lora_alpha=m.lora_alpha,
                kernels=m.kernels, fused_attention=m.fused_attention,
                progress=self.progress)
            # Training, evaluation and the local teacher all run on this mesh: resolve 'auto' for it once.
            self._model = cfg.with_kernels_for(self.mesh().devices.flat), params, tok
        return self._model

    def teacher(self):
        if self._teacher is None:
            from llm2llm_jax.teacher.backends import TeacherSettings, make_backend
            from llm2llm_jax.teacher.cache import DiskCache

            t = self.config.teacher
            settings = TeacherSettings(**{f: t[f] for f in TeacherSettings.__dataclass_fields__ if f in t})
            extra = {}
            if settings.kind == "local" and t.get("model", "") in ("", "smollm2", "student"):
                cfg, params, tok = self.model()
                # The untrained base student (loaded params never carry adapters; they are added per run).
                extra["model"] = (cfg.replace(lora_rank=0), params, tok)
            self._teacher = make_backend(settings, DiskCache(self.path("teacher_cache")), **extra)
        return self._teacher

    # -- stage: data
    def prepare_data(self) -> tuple[list[dict], list[dict]]:
        seed_file, test_file = self.path("data", "seed.jsonl"), self.path("data", "test.jsonl")
        if self.is_main and not (os.path.exists(seed_file) and os.path.exists(test_file)):
            d = self.config.data
            train, test = load_source(d, self.task)
            seed_set = data_lib.sample_seed(train, seed=self.config.seed, count=d.seed_count,
                                            fraction=d.seed_fraction, stratify=d.stratify)
            checker = data_lib.LeakageChecker(ex["input"] for ex in test)
            seed_set, leak = checker.filter(seed_set)
            if leak["exact"] or leak["ngram"]:
                say(f"dropped {leak['exact'] + leak['ngram']} seed examples that duplicate test examples")
            for i, ex in enumerate(seed_set):
                ex["id"] = ex.get("id") or f"seed-{i}"
                ex.pop("source_line", None)
            test = [{k: v for k, v in ex.items() if k != "source_line"} for ex in test]
            write_jsonl(test_file, test)
            write_jsonl(seed_file, seed_set)
        parallel.barrier("data")
        return read_jsonl(seed_file), read_jsonl(test_file)

    def agree(self, flag: bool) -> bool:
        """Process 0's answer, so that every process takes the same branch (collectives must match)."""
        return bool(parallel.broadcast_json(bool(flag)))

    def write_shard(self, i: int, examples: Sequence[dict]) -> None:
        shard_dir = self.path("shards")
        if self.is_main and not shards.is_written(shard_dir, i):
            shards.write_iteration(shard_dir, i, examples)
        parallel.barrier(f"shard-{i}")

    # -- stage: train
    def train(self, i: int, train_set: Sequence[dict]):
        from llm2llm_jax.train import TrainHParams, Trainer, add_lora_params, steps_per_epoch

        cfg, base_params, tok = self.model()
        t = self.config.train
        hp = TrainHParams(learning_rate=t.learning_rate, warmup_ratio=t.warmup_ratio, weight_decay=t.weight_decay,
                          epochs=t.epochs, batch_size=t.batch_size, micro_batch_size=t.micro_batch_size,
                          max_grad_norm=t.max_grad_norm, seq_multiple=t.seq_multiple,
                          max_length=self.config.data.max_length,
                          seed=t.shuffle_seed if t.shuffle_seed >= 0 else stable_seed(self.config.seed, "train"))
        examples, trunc = data_lib.tokenize_examples(self.task, train_set, tok, self.config.data.max_length,
                                                     self.config.data.truncation)
        total = steps_per_epoch(len(examples), hp.batch_size) * hp.epochs
        trainer = Trainer(cfg, hp, self.mesh(), total_steps=total, checkpoint_dir=self.iter_path(i, "checkpoints"),
                          keep_checkpoints=1)
        # Always from the base weights (adapters start fresh too): never from the previous iteration. The
        # shuffle and adapter seeds are the same every iteration, so iterations differ only in their data.
        params = add_lora_params(base_params, cfg, jax.random.PRNGKey(stable_seed(self.config.seed, "lora")))
        trainer.init_state(params)
        start = 0
        if trainer.checkpoints.latest_step() is not None:
            start = trainer.restore()
            say(f"iteration {i}: resuming training at step {start}/{total}")
        history = trainer.fit(examples, pad_id=tok.pad_token_id, progress=self.progress,
                              desc=f"iter {i} train", start_step=start,
                              checkpoint_every=self.config.train.checkpoint_every)
        if self.config.train.checkpoint_every:
            trainer.save(wait=True)
        trained = trainer.params()
        trainer.close()
        return trained, {"steps": total, "examples": len(examples), "truncation": trunc,
                         "final_loss": history[-1]["loss"] if history else None}

    # -- stage: evaluate
    def evaluate(self, params, examples: Sequence[dict], desc: str) -> list[dict]:
        from tqdm.auto import tqdm

        from llm2llm_jax.decode import decode_batch, inference_weights

        cfg, _, tok = self.model()  # with LoRA, `params` carry the trained adapters and cfg applies them
        cfg, params = inference_weights(cfg, params)  # once for the whole pass, not once per batch
        e = self.config.eval
        limit = self.config.data.max_length
        prompts = [tok(self.task.prompt(ex), add_special_tokens=False)["input_ids"][-limit:] for ex in examples]
        out = []
        bar = tqdm(total=len(examples), desc=desc, disable=not self.progress, unit="ex", leave=False)
        for start in range(0, len(examples), e.batch_size):
            chunk = prompts[start:start + e.batch_size]
            decoded = decode_batch(cfg, params, tok, chunk, e.batch_size, max_new_tokens=e.max_new_tokens,
                                   mesh=self.mesh())
            for ex, (text, _) in zip(examples[start:start + e.batch_size], decoded):
                pred = self.task.parse(text)
                out.append({"id": ex["id"], "generation": text, "prediction": pred,
                            "correct": bool(self.task.score(pred, ex))})
            bar.update(len(chunk))
        bar.close()
        return out

    # -- stage: teacher
    def augment(self, i: int, seed_set: Sequence[dict], wrong: Sequence[dict], predictions: dict,
                filt) -> tuple[list[dict], dict]:
        """New examples from the chosen seed examples (wrong ones for llm2llm, all for auggpt/eda)."""
        k = self.config.teacher.per_example
        if self.method == "eda" or self.config.teacher.kind == "pool":  # candidates without a teacher call
            make = self._eda_candidates if self.method == "eda" else self._pool_candidates
            cands = make(i, seed_set, wrong, k)
            kept, drops = filt.apply(cands)
            return kept, {"requests": 0, "candidates": len(cands), "drops": drops}
        from llm2llm_jax.teacher.prompts import build_messages, parse_examples
        from llm2llm_jax.teacher.backends import TeacherRequest

        requests = []
        for ex in wrong:
            system, turns = build_messages(self.task, ex, predictions.get(ex["id"], {}).get("generation", ""), k,
                                           same_label=self.config.teacher.same_label)
            requests.append(TeacherRequest(system=system, turns=turns,
                                           seed=stable_seed(self.config.seed, "teacher", i, ex["id"])))
        backend = self.teacher()
        say(f"iteration {i}: asking the {backend.kind} teacher for {k} new example(s) from each of "
            f"{len(requests)} seed examples")
        replies = backend.complete_many(requests)
        cands = []
        for ex, reply in zip(wrong, replies):
            for j, c in enumerate(parse_examples(reply, self.task)[:k]):
                c.update(id=f"it{i}-{ex['id']}-{j}", origin="teacher", parent_id=ex["id"], iteration=i + 1,
                         parent_label=ex["output"])
                cands.append(c)
        kept, drops = filt.apply(cands)
        return kept, {"requests": len(requests), "candidates": len(cands), "drops": drops,
                      "teacher_stats": dict(backend.stats)}

    def _eda_candidates(self, i: int, seed_set: Sequence[dict], wrong: Sequence[dict], k: int) -> list[dict]:
        """method='eda': k word-level edits of each chosen seed example, keeping its label."""
        rng = random.Random(stable_seed(self.config.seed, "eda", i))
        return [{"input": eda_edit(ex["input"], rng), "raw_output": self.task.target(ex).strip(),
                 "id": f"it{i}-{ex['id']}-{j}", "origin": "eda", "parent_id": ex["id"], "iteration": i + 1}
                for ex in wrong for j in range(k)]

    def _pool_candidates(self, i: int, seed_set: Sequence[dict], wrong: Sequence[dict], k: int) -> list[dict]:
        """teacher.kind='pool', a diagnostic: for each wrong seed example, k real labelled examples of its
        class from the training rows outside the seed set (the test set is held out by the source).

        A perfect teacher: run against a real one, it separates the method's ceiling on this student
        from the quality of the teacher's examples.
        """
        if self._pool is None:  # unused training rows by label (one group when the task has no labels)
            train, _ = load_source(self.config.data, self.task)
            seed_inputs = {ex["input"] for ex in seed_set}
            self._pool = {}
            for row in train:
                if row["input"] not in seed_inputs:
                    self._pool.setdefault(self._pool_key(row), []).append(row)
        rng = random.Random(stable_seed(self.config.seed, "pool", i))
        cands = []
        for ex in wrong:
            same = self._pool.get(self._pool_key(ex), [])
            for j, row in enumerate(rng.sample(same, min(k, len(same)))):
                cands.append({"input": row["input"], "raw_output": self.task.target(row).strip(),
                              "id": f"it{i}-{ex['id']}-{j}", "origin": "pool", "parent_id": ex["id"],
                              "iteration": i + 1, "parent_label": ex["output"]})
        return cands

    def _pool_key(self, example: dict):
        return example["output"] if self.task.is_classification else None

    # -- the loop
    def run(self) -> list[dict]:
        from llm2llm_jax.teacher.filters import AugmentationFilter

        os.makedirs(self.workdir, exist_ok=True)
        self._check_config()
        seed_set, test_set = self.prepare_data()
        test_eval = test_set[: self.config.data.test_limit] if self.config.data.test_limit else test_set
        shard_dir = self.path("shards")
        self.write_shard(0, seed_set)
        iterations = 1 if self.method == "finetune" else self.config.iterations
        if self.is_main and iterations > 1 and self.method in ("llm2llm", "auggpt") and self.config.teacher.kind != "pool":
            self.teacher()  # fail fast (missing API key, unknown backend) before any compute is spent
        from llm2llm_jax.teacher.prompts import worked_example_inputs

        # Dedup against the seed set and the prompt's worked example (weak teachers copy it).
        filt = AugmentationFilter(self.task, [ex["input"] for ex in seed_set] + worked_example_inputs(self.task),
                                  [ex["input"] for ex in test_set], rouge_threshold=self.config.filters.rouge_threshold,
                                  same_label=self.config.teacher.same_label)
        for i in range(iterations):
            train_set = shards.read_iteration(shard_dir, i)
            metrics_file = self.iter_path(i, "metrics.json")
            if self.agree(os.path.exists(metrics_file)):
                m = read_json(metrics_file)
                _remember_augmented(filt, self.iter_path(i, "augment.jsonl"))
                if m.get("stopped"):
                    break
                if i + 1 < iterations and os.path.exists(self.iter_path(i, "augment.jsonl")):
                    self.write_shard(i + 1, train_set + read_jsonl(self.iter_path(i, "augment.jsonl")))
                continue
            try:
                m = self.run_iteration(i, train_set, seed_set, test_eval, filt, last=i + 1 == iterations)
            except BudgetExceeded as e:
                self.finish()
                raise RunError(f"{e}. Everything so far is saved in {self.workdir} (answers already paid for are "
                               f"cached); rerun the same command with a larger budget to continue.") from None
            if m.get("stopped"):
                break
        return self.finish()

    def run_iteration(self, i, train_set, seed_set, test_eval, filt, last: bool) -> dict:
        start = time.time()
        seed_pred_file, test_pred_file = self.iter_path(i, "predictions_seed.jsonl"), self.iter_path(i, "predictions_test.jsonl")
        train_file = self.iter_path(i, "train.json")
        if self.agree(not (os.path.exists(seed_pred_file) and os.path.exists(test_pred_file))):
            say(f"iteration {i}: fine-tuning from the base weights on {len(train_set)} examples")
            params, train_info = self.train(i, train_set)
            if self.is_main:
                write_json(train_file, train_info)
            test_preds = self.evaluate(params, test_eval, f"iter {i} eval test")
            seed_preds = self.evaluate(params, seed_set, f"iter {i} eval seed")
            del params
            if self.is_main:
                write_jsonl(test_pred_file, test_preds)
                write_jsonl(seed_pred_file, seed_preds)
            parallel.barrier(f"eval-{i}")
            _drop_checkpoints(self.iter_path(i, "checkpoints"), keep=self.config.train.keep_checkpoints)
        seed_preds, test_preds = read_jsonl(seed_pred_file), read_jsonl(test_pred_file)
        train_info = read_json(train_file) if os.path.exists(train_file) else {}
        by_id = {p["id"]: p for p in seed_preds}
        wrong = [ex for ex in seed_set if not by_id[ex["id"]]["correct"]]
        seed_acc = 1 - len(wrong) / len(seed_set)
        test_acc = sum(p["correct"] for p in test_preds) / max(1, len(test_preds))
        say(f"iteration {i}: test accuracy {test_acc:.2%}, seed accuracy {seed_acc:.2%} "
            f"({len(wrong)} of {len(seed_set)} seed examples wrong), train set {len(train_set)}")
        metrics = {"iteration": i, "method": self.method, "train_size": len(train_set),
                   "seed_accuracy": seed_acc, "test_accuracy": test_acc, "seed_wrong": len(wrong),
                   "train_final_loss": train_info.get("final_loss"), "new_examples": 0}
        chosen = wrong if self.method in ("llm2llm",) else list(seed_set)
        augment_file = self.iter_path(i, "augment.jsonl")
        if last or self.method == "finetune":
            metrics["note"] = "last iteration: no augmentation"
        elif not chosen:
            metrics["stopped"] = "no seed example is wrong"
            say(f"iteration {i}: every seed example is right; stopping early")
        else:
            if self.agree(not os.path.exists(augment_file)):
                kept, stats = [], {}
                if self.is_main:
                    kept, stats = self.augment(i, seed_set, chosen, by_id, filt)
                kept, stats = parallel.broadcast_json((kept, stats))
                if self.is_main:
                    write_jsonl(augment_file, kept)
                    write_json(self.iter_path(i, "augment_stats.json"), stats)
                parallel.barrier(f"augment-{i}")
            else:
                _remember_augmented(filt, augment_file)
            kept = read_jsonl(augment_file)
            stats = read_json(self.iter_path(i, "augment_stats.json"))
            metrics.update(new_examples=len(kept), teacher_requests=stats.get("requests", 0),
                           candidates=stats.get("candidates", 0), drops=stats.get("drops", {}))
            say(f"iteration {i}: kept {len(kept)} of {stats.get('candidates', 0)} new examples "
                f"(dropped: {', '.join(f'{k} {v}' for k, v in stats.get('drops', {}).items() if v) or 'none'})")
            self.write_shard(i + 1, list(train_set) + kept)
        metrics["seconds"] = round(time.time() - start, 1)
        if self.is_main:
            write_json(self.iter_path(i, "metrics.json"), metrics)
        parallel.barrier(f"metrics-{i}")
        return metrics

    # -- outputs
    def finish(self) -> list[dict]:
        rows = []
        i = 0
        while os.path.exists(self.iter_path(i, "metrics.json")):
            rows.append(read_json(self.iter_path(i, "metrics.json")))
            i += 1
        if self.is_main:
            write_jsonl(self.path("metrics.jsonl"), rows)
            write_report(self.workdir, rows, self.config)
        return rows


def _remember_augmented(filt, path: str) -> None:
    if os.path.exists(path):
        for ex in read_jsonl(path):
            filt.remember(ex["input"])


def _drop_checkpoints(path: str, keep: bool) -> None:
    import shutil

    if not keep and jax.process_index() == 0:
        shutil.rmtree(path, ignore_errors=True)


def load_source(d, task: Task) -> tuple[list[dict], list[dict]]:
    """(train pool, test set) from config.data; test is held out here when the source has none."""
    if d.source == "trec_offline":
        rows = data_lib.load_trec()
        train, test = data_lib.stratified_split(rows, d.test_count, seed=d.split_seed)
    elif d.source == "gsm8k_offline":
        rows = data_lib.load_gsm8k_test()
        train, test = data_lib.stratified_split(rows, d.test_count, seed=d.split_seed, stratify=False)
    elif d.source == "file":
        if not d.train_path:
            raise RunError("data.source='file' needs data.train_path (and data.test_path, or data.test_count)")
        train = data_lib.read_table(d.train_path, d.input_field, d.output_field, d.format)
        data_lib.check_labels(train, task, d.train_path)
        if d.test_path:
            test = data_lib.read_table(d.test_path, d.input_field, d.output_field, d.format)
            data_lib.check_labels(test, task, d.test_path)
        else:
            train, test = data_lib.stratified_split(train, d.test_count, seed=d.split_seed,
                                                    stratify=task.is_classification)
        for prefix, rows in (("train", train), ("test", test)):
            for j, ex in enumerate(rows):
                ex.setdefault("id", f"{prefix}-{j}")
    elif d.source == "tfds":
        train = data_lib.load_tfds(d.tfds_name, d.tfds_train_split, d.input_field, d.output_field, d.tfds_data_dir or None)
        test = data_lib.load_tfds(d.tfds_name, d.tfds_test_split, d.input_field, d.output_field, d.tfds_data_dir or None)
        data_lib.check_labels(train, task, d.tfds_name)
    else:
        raise RunError(f"data.source={d.source!r}: choose trec_offline, gsm8k_offline, file or tfds")
    return train, test


def write_report(workdir: str, rows: Sequence[dict], config) -> None:
    """report.md (a table) and report.png (seed accuracy, test accuracy and train size per iteration)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [f"# LLM2LLM run: task {config.task}, method {config.method}", "",
             "| iteration | train size | seed accuracy | test accuracy | seed wrong | new examples |",
             "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['iteration']} | {r['train_size']} | {r['seed_accuracy']:.2%} | {r['test_accuracy']:.2%} | "
                     f"{r['seed_wrong']} | {r.get('new_examples', 0)} |")
    if rows:
        gain = rows[-1]["test_accuracy"] - rows[0]["test_accuracy"]
        lines += ["", f"Test accuracy gain over iteration 0 (plain fine-tuning on the seed set): {gain:+.2%}"]
    with atomic_open(os.path.join(workdir, "report.md")) as f:
        f.write("\n".join(lines) + "\n")

    fig, ax = plt.subplots(figsize=(7, 4))
    its = [r["iteration"] for r in rows]
    ax.plot(its, [100 * r["seed_accuracy"] for r in rows], "o-", label="seed accuracy")
    ax.plot(its, [100 * r["test_accuracy"] for r in rows], "s-", label="test accuracy")
    ax.set_xlabel("iteration")
    ax.set_ylabel("accuracy (%)")
    ax2 = ax.twinx()
    ax2.bar(its, [r["train_size"] for r in rows], alpha=0.2, color="gray", label="train size")
    ax2.set_ylabel("training examples")
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_xticks(its)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="lower right")
    ax.set_title(f"LLM2LLM on {config.task} ({config.method})")
    fig.tight_layout()
    with atomic_open(os.path.join(workdir, "report.png"), "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def run_from_config(config, model=None, teacher=None) -> list[dict]:
    return Llm2llmRun(config, model=model, teacher=teacher).run()
