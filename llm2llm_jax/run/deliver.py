"""What a finished run delivers: the selected iteration's student, exported to `student/` (an HF directory,
the PEFT adapter of a LoRA student, the run's `llm2llm.json` for the predict command, and the model card,
written last). A stage: a complete export is never redone, and a killed one is redone whole."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence

import jax
import numpy as np

from llm2llm_jax.common import files
from llm2llm_jax.common.console import say
from llm2llm_jax.model.loading import source_gguf
from llm2llm_jax.model.lora import add_lora_params
from llm2llm_jax.run import model_card
from llm2llm_jax.run.selection import select
from llm2llm_jax.run.stages import run_stage
from llm2llm_jax.student import kept
from llm2llm_jax.student.export import PEFT_DIR, export_hf, export_peft
from llm2llm_jax.student.gguf_export import export_gguf
from llm2llm_jax.student.saved import META_FILE, task_to_json

STUDENT_DIR = "student"
CARD = "README.md"
TMP_PREFIX = ".tmp-student-"


def deliver(run, rows: Sequence[dict]) -> None:
    """Export the student `select` chooses from the run's rows (export.student; collective)."""
    if not run.config.export.student or not rows or run.keeper is None:
        return
    selected, why = select(rows)
    # The card is written last; a GGUF asked for after the run finished is exported on the next invocation.
    outputs = [run.dir.path(STUDENT_DIR, CARD)]
    if run.config.export.gguf:
        outputs.append(run.dir.path(STUDENT_DIR, f"model-{run.config.export.gguf_type}.gguf"))
    if all(files.exists(path) for path in outputs):
        return
    needed, have = run.dir.model_of(selected), run.keeper.step()
    if have != needed:
        say(
            f"no student exported: iteration {selected} ({why}) has the weights of iteration {needed}, and "
            f"{run.dir.path('kept_student')} holds {'none' if have is None else f'iteration {have}'} (a run "
            "made before students were kept, or with export.student=False: rerun it in a new "
            "--config.workdir)"
        )
        return
    start = time.time()
    run_stage(
        "export",
        outputs,
        lambda: _restore(run),
        lambda params: _write(run, params, rows, selected, why),
        lambda: None,
        collective=True,
    )
    size = files.size(run.dir.path(STUDENT_DIR))
    say(
        f"student of iteration {selected} ({why}) exported to {run.dir.path(STUDENT_DIR)}: {size / 1e6:,.0f} "
        f"MB in {time.time() - start:.0f} s"
    )


def _restore(run):
    """The kept weights, on the host, in the structure of the student's params (adapters included)."""
    cfg, base, _ = run.student.model()
    template = jax.tree.map(np.asarray, add_lora_params(base, cfg, jax.random.PRNGKey(0)))
    return kept.restore(run.keeper.directory, template)


def _meta(run, selected: int, why: str) -> dict:
    c = run.config
    return {
        "task": task_to_json(run.task),
        "prompt_format": run.student.prompt_format(),
        "max_length": c.data.max_length,
        "eval": {
            "mode": c.eval.mode,
            "max_new_tokens": c.eval.max_new_tokens,
            "batch_size": c.eval.batch_size,
        },
        "fields": {"input": c.data.input_field, "output": c.data.output_field, "format": c.data.format},
        "selected_iteration": selected,
        "selected_because": why,
        "base_model": model_card.base_model(c)[0],
    }


def _write(run, params, rows, selected: int, why: str) -> None:
    """Everything into a local directory, then published to the run directory, the card last."""
    cfg, _, tokenizer = run.student.model()
    c, target = run.config, run.dir.path(STUDENT_DIR)
    local_root = None if files.is_remote(target) else run.dir.root  # a rename publishes it there
    for name in files.listdir(run.dir.root):  # what a killed export left
        if name.startswith(TMP_PREFIX) and local_root:
            files.rmtree(run.dir.path(name))
    with tempfile.TemporaryDirectory(prefix=TMP_PREFIX, dir=local_root) as tmp:
        out = os.path.join(tmp, STUDENT_DIR)
        export_hf(params, cfg, tokenizer, out, c.export.dtype, c.eval.max_new_tokens)
        if cfg.lora_rank:
            export_peft(params, cfg, os.path.join(out, PEFT_DIR), model_card.base_model(c)[0], c.export.dtype)
        if c.export.gguf:
            gguf_path = os.path.join(out, f"model-{c.export.gguf_type}.gguf")
            source = source_gguf(c.model.source, c.model.path)
            export_gguf(
                params, cfg, tokenizer, gguf_path, c.export.gguf_type, source, f"{run.task.name} student"
            )
        with open(os.path.join(out, META_FILE), "w", encoding="utf-8") as f:
            json.dump(_meta(run, selected, why), f, indent=1, sort_keys=True)
            f.write("\n")
        fmt = run.student.prompt_format()
        text = model_card.card(c, run.task, rows, selected, why, run.data.seed[0], tokenizer, fmt)
        with open(os.path.join(out, CARD), "w", encoding="utf-8") as f:
            f.write(text)
        _publish(out, target)


def _publish(local: str, target: str) -> None:
    """The exported directory into the run directory, replacing a half-written one: renamed into place, or
    uploaded file by file to an object store with the card last."""
    files.rmtree(target)
    if not files.is_remote(target):
        files.usual_permissions(local)
        os.rename(local, target)
        return
    names = sorted(
        (os.path.relpath(os.path.join(root, n), local) for root, _, ns in os.walk(local) for n in ns),
        key=lambda rel: rel == CARD,
    )
    for rel in names:
        files.write_if_changed(os.path.join(target, rel), files.read_bytes(os.path.join(local, rel)))
