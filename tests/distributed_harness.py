"""One of two JAX processes (jax.distributed on localhost) running two LLM2LLM iterations over a shared run
dir.

  python tests/distributed_harness.py WORKDIR PROCESS_ID PORT [term]
Prints TEACHER_CALLS <n> and DATA <sha256 of each iteration's training set as this process read it>. With
`term` this process sends itself SIGTERM after the first step of iteration 1's fine-tune (a preemption
notice that reached one host of a pod); like the launcher, it then prints its one line and exits 143.
"""

import hashlib
import json
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import jax


def main():
    workdir, pid, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    term = sys.argv[4:] == ["term"]
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    from llm2llm_jax.common import parallel, stopping
    from llm2llm_jax.student import train

    stopping.stop_on_signals()  # before joining, as the launcher does
    parallel.maybe_initialize_distributed(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    assert jax.process_count() == 2 and len(jax.devices()) == 2

    import loop_harness
    from scripted_teacher import ScriptedBackend

    from llm2llm_jax.data import shards
    from llm2llm_jax.run import controller as loop
    from llm2llm_jax.teacher.base import TeacherSettings
    from llm2llm_jax.teacher.cache import DiskCache

    config = loop_harness.small_config(workdir, iterations=2, epochs=2)
    config.data.test_limit = 8
    teacher = ScriptedBackend(
        TeacherSettings(kind="scripted", concurrency=1),
        DiskCache(os.path.join(workdir, "teacher_cache")),
        script=loop_harness.scripted_answer,
    )
    train.FETCH_EVERY = 2  # fetch, and agree on a SIGTERM, every 2 steps inside these short fine-tunes
    if term:
        fits, original_fit, original_step = [], train.Trainer.fit, train.Trainer.step

        def fit(self, *args, **kwargs):
            fits.append(0)
            return original_fit(self, *args, **kwargs)

        def step(self, batch):
            out = original_step(self, batch)
            fits[-1] += 1
            if len(fits) == 2 and fits[-1] == 1:
                os.kill(os.getpid(), signal.SIGTERM)
            return out

        train.Trainer.fit, train.Trainer.step = fit, step
    try:
        rows = loop.run_from_config(config, model=loop_harness.tiny_student(), teacher=teacher)
    except KeyboardInterrupt as stop:
        line, status = stopping.stop_message(stop)
        print(line, file=sys.stderr)
        sys.exit(status)
    digests = []
    for i in range(2):
        records = shards.read_iteration(os.path.join(workdir, "shards"), i)
        digests.append(hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest())
    print("TEACHER_CALLS", len(teacher.seen))
    print("DATA", json.dumps(digests))
    print("METRICS", json.dumps([{k: v for k, v in r.items() if not k.endswith("seconds")} for r in rows]))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
