"""The LLM2LLM controller with a stand-in student (no training, a fixed evaluation), for tests of everything
around the student: data, shards, teacher requests, filters, resume, budgets, locks and faults."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import loop_harness

from llm2llm_jax.common import files
from llm2llm_jax.run import controller as loop


def _scripted(workdir, script=loop_harness.scripted_answer, **settings):
    """The scripted teacher over the run's own cache directory (settings: TeacherSettings fields)."""
    from scripted_teacher import ScriptedBackend

    from llm2llm_jax.teacher.base import TeacherSettings
    from llm2llm_jax.teacher.cache import DiskCache

    return ScriptedBackend(
        TeacherSettings(kind="scripted", **settings),
        DiskCache(os.path.join(str(workdir), "teacher_cache")),
        script=script,
    )


def _asked_ids(teacher, seed):
    """Ids of the seed examples the teacher's requests were made from, in request order."""
    by_input = {ex["input"]: ex["id"] for ex in seed}
    return [by_input[r.turns[-1]["content"].split("\n")[1].removeprefix("Input: ")] for r in teacher.seen]


# Short TREC-style questions (ROUGE-L between a question and its tagged variants stays under the 0.95
# threshold).
ORACLE_TRAIN = [
    ("What does NASA stand for ?", "ABBR"),
    ("Who wrote Hamlet ?", "HUM"),
    ("Where is Lake Titicaca ?", "LOC"),
    ("How many moons does Mars have ?", "NUM"),
    ("What is a quasar ?", "DESC"),
    ("What color is a ruby ?", "ENTY"),
    ("Who painted the Night Watch ?", "HUM"),
    ("Where is the Alhambra ?", "LOC"),
    ("How tall is Mount Fuji ?", "NUM"),
    ("What is photosynthesis ?", "DESC"),
    ("What does CPU mean ?", "ABBR"),
    ("What animal is a kea ?", "ENTY"),
]
ORACLE_TEST = [
    ("Where is Timbuktu ?", "LOC"),
    ("Who invented radio ?", "HUM"),
    ("What is a comet ?", "DESC"),
    ("Who wrote Hamlet ?", "HUM"),
]  # the last one duplicates a training row: it must not be a seed
ORACLE_RIGHT = {
    "What does NASA stand for ?",
    "Where is Lake Titicaca ?",
    "What is a quasar ?",
    "Who painted the Night Watch ?",
    "What is photosynthesis ?",
}
OTHER_LABEL = {"ABBR": "DESC", "DESC": "ENTY", "ENTY": "HUM", "HUM": "LOC", "LOC": "NUM", "NUM": "ABBR"}


class OracleRun(loop.Llm2llmRun):
    """The controller with a stand-in student: training returns at once (recording what it was given), and
    evaluation answers the seed examples in ORACLE_RIGHT correctly and every other one with a wrong class,
    whatever the training set. The rest (data, shards, teacher requests, filters, resume) is the real one."""

    def __init__(self, config, teacher=None):
        super().__init__(config, teacher=teacher)
        self.trained_on = []
        self.keeper = None  # a stand-in student has no weights to keep

    def train(self, i, train_set):
        self.trained_on.append(sorted(ex["input"] for ex in train_set))
        return None, {"steps": 0, "examples": len(train_set), "truncation": {}, "final_loss": None}

    def evaluate(self, params, examples, desc):
        out = []
        for ex in examples:
            right = ex["input"] in ORACLE_RIGHT
            label = ex["output"] if right else OTHER_LABEL[ex["output"]]
            out.append(
                {
                    "id": ex["id"],
                    "generation": " " + self.task.verbalize(label),
                    "prediction": label,
                    "correct": right,
                }
            )
        return out


def oracle_teacher_answer(request) -> str:
    """Four items per request: a verbatim copy of the seed input (a duplicate), a fixed rewording (new once,
    then a duplicate in later iterations), a variant tagged with the request's seed (new every time), and
    one with the student's wrong class (a label mismatch under same_label)."""
    import re

    last = request.turns[-1]["content"]
    text = re.search(r"^Input: (.*)$", last, re.M).group(1)
    label = re.search(r"^Correct output: (.*)$", last, re.M).group(1)
    student = re.search(r"^Student's output: (.*)$", last, re.M).group(1)
    items = [
        (text, label),
        (f"Tell me, {text.lower()}", label),
        (f"{text} (variant {request.seed % 997})", label),
        (f"{text} Answer briefly.", student),
    ]
    return "\n".join(f"{n}. Input: {q}\n   Output: {a}" for n, (q, a) in enumerate(items, 1))


def _oracle_config(tmp_path, name):
    workdir = tmp_path / name
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    for split, rows in (("train", ORACLE_TRAIN), ("test", ORACLE_TEST)):
        files.write_jsonl(str(data / f"{split}.jsonl"), [{"input": q, "output": a} for q, a in rows])
    config = loop_harness.small_config(str(workdir), iterations=3)
    config.data.source = "file"
    config.data.train_path = str(data / "train.jsonl")
    config.data.test_path = str(data / "test.jsonl")
    config.data.seed_count = 0
    config.data.seed_fraction = 1.0
    config.teacher.per_example = 4
    config.teacher.same_label = True
    config.teacher.concurrency = 1
    return config


def _oracle_teacher(workdir, script=oracle_teacher_answer, **settings):
    return _scripted(workdir, script, concurrency=1, **settings)
