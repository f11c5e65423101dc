"""A student saved by a run (`RUN/student/`, or any HF directory with the run's `llm2llm.json` beside it): its
task, prompt format and evaluation settings, loaded back and asked for predictions on new inputs.

    student = SavedStudent.load("runs/default/student")
    rows = student.predict(["What is the capital of Peru ?"])   # [{"input": ..., "prediction": "LOC", ...}]
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

from llm2llm_jax.common import parallel
from llm2llm_jax.common.errors import UserError
from llm2llm_jax.data.tasks import Task
from llm2llm_jax.model.hardware import resolve_dtype
from llm2llm_jax.model.loading import load_pretrained
from llm2llm_jax.student.predict import Predictor

META_FILE = "llm2llm.json"


class StudentError(UserError, ValueError):
    """A directory that holds no saved student, or a saved student that cannot be read."""


def task_to_json(task: Task) -> dict:
    return dataclasses.asdict(task)


def task_from_json(d: dict) -> Task:
    spec = dict(d)
    for key in ("labels", "verbalizers", "noun"):
        spec[key] = tuple(spec.get(key) or ())
    spec["worked"] = tuple(spec.get("worked") or ())
    return Task(**spec)


def read_meta(directory: str) -> dict:
    path = os.path.join(directory, META_FILE)
    if os.path.isdir(os.path.join(directory, "iter_0000")):
        raise StudentError(
            f"{directory}: a run directory without an exported student (run with export.student=False, "
            f"stopped before its end, or made before runs exported their students); rerun it to the end with "
            f"--config.export.student=True"
        )
    if not os.path.isfile(os.path.join(directory, "config.json")) or not os.path.isfile(path):
        raise StudentError(
            f"{directory}: not a saved student (it needs config.json and {META_FILE}); give a run directory "
            f"whose student was exported (RUN/student) or that directory itself"
        )
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise StudentError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None


def student_dir(path: str) -> str:
    """A saved student's directory from a run directory (its student/) or the student's directory itself."""
    inside = os.path.join(path, "student")
    if not os.path.isfile(os.path.join(path, META_FILE)) and os.path.isdir(inside):
        return inside
    return path


@dataclasses.dataclass
class SavedStudent:
    cfg: object
    params: dict
    tokenizer: object
    task: Task
    meta: dict
    mesh: object = None

    @classmethod
    def load(cls, path: str, dtype: str = "auto", mesh_shape=(1, -1, 1)) -> SavedStudent:
        """The student in `path` (a run directory or a student directory) on a mesh of every device."""
        directory = student_dir(path)
        meta = read_meta(directory)
        mesh = parallel.make_mesh(tuple(mesh_shape))
        devices = list(mesh.devices.flat)
        cfg, params, tokenizer = load_pretrained(
            "hf", directory, progress=False, dtype=resolve_dtype(dtype, devices), scan_layers=False
        )
        return cls(cfg.with_kernels_for(devices), params, tokenizer, task_from_json(meta["task"]), meta, mesh)

    def predict(
        self, inputs: Sequence[str], mode: str = "", batch_size: int = 0, progress: bool = False
    ) -> list[dict]:
        """One row per input: the student's answer (`generation`), its `prediction` as the task reads it, and
        in score mode each label's log-probability (`logprobs`)."""
        e = self.meta["eval"]
        examples = [{"id": str(n), "input": text, "output": ""} for n, text in enumerate(inputs)]
        predictor = Predictor(
            self.cfg, self.params, self.tokenizer, batch_size or e["batch_size"], mesh=self.mesh
        )
        rows = predictor.evaluate(
            self.task,
            examples,
            self.meta["max_length"],
            e["max_new_tokens"],
            desc="predict",
            progress=progress,
            mode=mode or e["mode"],
            fmt=self.meta["prompt_format"],
        )
        return [
            {"input": text, **{k: v for k, v in row.items() if k not in ("id", "correct")}}
            for text, row in zip(inputs, rows)
        ]
