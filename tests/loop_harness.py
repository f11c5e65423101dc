"""Runs a small LLM2LLM loop in its own process (tiny random student, scripted teacher), for the loop tests.

  python tests/loop_harness.py WORKDIR [--kill-at train|eval|teacher|shards] [--iterations N] [--method M]

--kill-at sends SIGKILL to this very process in the middle of that stage (a real kill -9), so
the tests can rerun the same command and check the resumed run against an uninterrupted one.
"""

import argparse
import json
import os
import re
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax

# Reuse compiled executables across the test's many short runs (JAX's persistent compilation cache).
if os.environ.get("LLM2LLM_TEST_JIT_CACHE"):
    jax.config.update("jax_compilation_cache_dir", os.environ["LLM2LLM_TEST_JIT_CACHE"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def tiny_student():
    from llm2llm_jax.common import assets
    from llm2llm_jax.model.config import LlamaConfig
    from llm2llm_jax.model.llama import init_params
    from llm2llm_jax.model.loading import load_gguf_tokenizer
    from llm2llm_jax.student.train import host_params

    tok = load_gguf_tokenizer(assets.smollm2_gguf_path(quiet=True))
    cfg = LlamaConfig(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        max_position_embeddings=512,
    )
    return cfg, host_params(init_params(cfg, jax.random.PRNGKey(0))), tok


def scripted_answer(request) -> str:
    """One new example per request: the wrong input with a tag, and its correct label."""
    last = request.turns[-1]["content"]
    text = re.search(r"^Input: (.*)$", last, re.M).group(1)
    label = re.search(r"^Correct output: (.*)$", last, re.M).group(1)
    return f"1. Input: Tell me, {text.lower()} (variant {request.seed % 997})\n   Output: {label}"


def small_config(workdir, iterations=3, method="llm2llm", epochs=3):
    from configs.base import base_config

    c = base_config()
    c.workdir = workdir
    c.task = "trec"
    c.method = method
    c.iterations = iterations
    c.progress = False
    c.mesh = (1, -1, 1)
    c.model.source = "smollm2"  # valid for config checks; the tests hand the run its model (or a stand-in)
    c.data.source = "trec_offline"
    c.data.seed_count = 12
    c.data.test_count = 200
    c.data.test_limit = 16
    c.data.max_length = 64
    c.train.learning_rate = 1e-2
    c.train.epochs = epochs
    c.train.batch_size = 8
    c.train.seq_multiple = 64  # = max_length: one training batch shape, one compilation per run
    c.train.checkpoint_every = 4
    c.train.checkpoint_minutes = 0.0  # every 4 steps: the kill-and-resume tests stop after one
    c.eval.batch_size = 16
    c.eval.max_new_tokens = 3
    c.teacher.kind = "scripted"
    c.teacher.mode = "example"  # scripted_answer reads the example-mode prompt
    c.teacher.concurrency = 2
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir")
    ap.add_argument("--kill-at", default="")
    ap.add_argument("--signal", default="kill", choices=("kill", "term"), help="how --kill-at stops the run")
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--method", default="llm2llm")
    ap.add_argument("--dev-loss", action="store_true", help="a dev split, and epochs chosen by its loss")
    args = ap.parse_args()

    from scripted_teacher import ScriptedBackend

    from llm2llm_jax.data import shards
    from llm2llm_jax.run import controller as loop
    from llm2llm_jax.student.train import Trainer
    from llm2llm_jax.teacher.base import TeacherSettings
    from llm2llm_jax.teacher.cache import DiskCache

    config = small_config(args.workdir, args.iterations, args.method)
    if args.dev_loss:
        config.data.dev_count = 16
        config.train.epoch_selection, config.train.epochs, config.train.patience = "dev_loss", 4, 1
    teacher = ScriptedBackend(
        TeacherSettings(kind="scripted", concurrency=1),
        DiskCache(os.path.join(args.workdir, "teacher_cache")),
        script=scripted_answer,
    )

    def die():
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGTERM if args.signal == "term" else signal.SIGKILL)

    if args.kill_at == "train":  # iteration 1, after its 6th optimizer step (a checkpoint exists at step 4)
        original_step = Trainer.step
        counter = {"n": 0}

        def step(self, batch):
            out = original_step(self, batch)
            if os.path.exists(os.path.join(args.workdir, "iter_0000", "metrics.json")):
                counter["n"] += 1
                if counter["n"] == 6:
                    self.checkpoints.wait_until_finished()
                    die()
            return out

        Trainer.step = step
    elif args.kill_at == "eval":  # iteration 1, between its test and seed evaluations
        from llm2llm_jax.student.predict import Predictor

        original_evaluate = Predictor.evaluate

        def evaluate(self, task, examples, *rest, **kwargs):
            out = original_evaluate(self, task, examples, *rest, **kwargs)
            if os.path.exists(os.path.join(args.workdir, "iter_0000", "metrics.json")):
                die()
            return out

        Predictor.evaluate = evaluate
    elif args.kill_at == "teacher":  # iteration 1, after 3 paid teacher calls
        original_call = ScriptedBackend._call

        paid_in_iteration_1 = []

        def call(self, request):
            out = original_call(self, request)
            if os.path.exists(os.path.join(args.workdir, "iter_0000", "metrics.json")):
                paid_in_iteration_1.append(request.seed)
                if len(paid_in_iteration_1) == 3:
                    die()
            return out

        ScriptedBackend._call = call
    elif args.kill_at == "keep":  # iteration 1's weights kept, its results not yet written
        from llm2llm_jax.student import kept

        original_keep = kept.keep

        def keep(directory, step, params):
            original_keep(directory, step, params)
            if step == 1:
                die()

        kept.keep = keep
    elif args.kill_at == "export":  # the student's HF directory written, its adapter and card not yet
        from llm2llm_jax.run import deliver

        original_export = deliver.export_hf

        def export_hf(*a, **k):
            original_export(*a, **k)
            die()

        deliver.export_hf = export_hf
    elif args.kill_at == "shards":  # while writing iteration 2's shard
        original_gen = shards.Llm2llmShards._generate_examples

        def gen(self):
            for n, item in enumerate(original_gen(self)):
                if self.builder_config.name == "iteration_0002" and n == 5:
                    die()
                yield item

        shards.Llm2llmShards._generate_examples = gen

    from llm2llm_jax.common.errors import UserError
    from llm2llm_jax.common.stopping import stop_message, stop_on_signals

    stop_on_signals()
    status = 2
    try:
        rows = loop.run_from_config(config, model=tiny_student(), teacher=teacher)
    except UserError as e:  # as the launcher reports it
        print(f"error: {e}", file=sys.stderr)
        rows = None
    except KeyboardInterrupt as stop:  # as the launcher reports it
        line, status = stop_message(stop)
        print(line, file=sys.stderr)
        rows = None
    if rows is None:
        from llm2llm_jax.common.disk_faults import collect_abandoned_writes

        collect_abandoned_writes()
        sys.exit(status)
    print("METRICS " + json.dumps(rows))
    print("TEACHER " + json.dumps([r.seed for r in teacher.seen]))


if __name__ == "__main__":
    main()
