"""A run's own evidence: each iteration's test accuracy with its Wilson interval, per-class accuracy and the
confusion matrix, the teacher's yield, in metrics, report.md and TensorBoard (read back from its event
files)."""

import glob
import os
import struct
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from oracle_run import OracleRun, _oracle_config, _oracle_teacher

from llm2llm_jax.run import stats


def tensorboard_scalars(logdir: str) -> dict:
    """{tag: {step: value}} from the TFRecord-framed event files in `logdir` (tensorboardX's protobufs)."""
    from tensorboardX.proto import event_pb2

    out: dict = {}
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        with open(path, "rb") as f:
            data = f.read()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, {})[event.step] = value.simple_value
    return out


def test_iterations_carry_intervals_classes_and_yield_into_metrics_report_and_tensorboard(tmp_path):
    config = _oracle_config(tmp_path, "run")
    rows = OracleRun(config, _oracle_teacher(tmp_path / "run")).run()
    for r in rows:
        correct = round(r["test_accuracy"] * r["test_count"])
        assert (r["test_accuracy_low"], r["test_accuracy_high"]) == pytest.approx(
            stats.wilson_interval(correct, r["test_count"]), abs=1e-6
        )
        confusion = r["test_confusion"]
        assert sum(sum(c.values()) for c in confusion.values()) == r["test_count"] == 4
        assert sum(c.get(gold, 0) for gold, c in confusion.items()) == correct
    # the stand-in student answers every test question with the wrong class: LOC -> NUM and so on
    assert (
        rows[0]["test_confusion"]["LOC"] == {"NUM": 1} and rows[0]["test_per_class"]["LOC"]["accuracy"] == 0.0
    )
    assert rows[0]["test_per_class"]["ABBR"] == {"count": 0, "accuracy": None}

    report = (tmp_path / "run" / "report.md").read_text()
    high = f"{rows[0]['test_accuracy_high']:.1%}"
    assert high == "49.0%"  # Wilson's upper end for 0 of 4
    # 6 requests for 4 examples each: 24 asked, 24 parsed, 12 kept
    assert (
        f"| 0 | 11 | 45.45% | 0.00% [0.0%, {high}] | 6 | 6 | 24 | 24 | 12 | 50% | label_mismatch 6, "
        "duplicate 6 |" in report
    )
    assert rows[0]["asked"] == 24 and rows[0]["teacher_yield"] == 0.5
    asked = sum(r.get("asked", 0) for r in rows)
    kept = sum(r["new_examples"] for r in rows)
    assert f"Teacher yield over the run: {kept} kept of {asked} new examples asked for" in report
    assert (
        "## Iteration 2 on the test set, per class" in report
        and "| HUM | 0 | 0 | 0 | 0 | 2 | 0 | 2 | 0.0% |" in report
    )

    scalars = tensorboard_scalars(str(tmp_path / "run" / "tensorboard" / "iterations"))
    assert scalars["run/test_accuracy"] == {0: 0.0, 1: 0.0, 2: 0.0}
    assert scalars["run/train_size"] == {0: 11, 1: 23, 2: 29}
    assert scalars["run/new_examples"] == {0: 12, 1: 6, 2: 0} and scalars["teacher_drops/duplicate"][1] == 12
    assert scalars["run/teacher_yield"] == {0: 0.5, 1: 0.25}
    assert scalars["run/test_accuracy_high"][0] == pytest.approx(rows[0]["test_accuracy_high"], abs=1e-6)


def test_a_hook_sees_each_iteration_and_its_stages(tmp_path):
    """An observer added to a run gets every event in the method's order, and may add fields to the rows."""
    from llm2llm_jax.run.hooks import Hook

    class Recorder(Hook):
        def __init__(self):
            self.events = []

        def stage(self, kind):
            self.events.append(("stage", kind))
            return super().stage(kind)

        def started(self, run):
            self.events.append(("started", run.iterations))

        def evaluated(self, i, metrics):
            self.events.append(("evaluated", i, metrics["test_accuracy"]))

        def augmented(self, i, metrics):
            self.events.append(("augmented", i, metrics["new_examples"]))

        def iteration_done(self, metrics):
            metrics["recorded"] = True
            self.events.append(("done", metrics["iteration"]))

    config = _oracle_config(tmp_path, "run")
    run = OracleRun(config, _oracle_teacher(tmp_path / "run"))
    recorder = Recorder()
    run.hooks.add(recorder)
    rows = run.run()
    done = [e for e in recorder.events if e[0] in ("started", "evaluated", "augmented", "done")]
    assert done == [
        ("started", 3),
        ("evaluated", 0, rows[0]["test_accuracy"]),
        ("augmented", 0, rows[0]["new_examples"]),
        ("done", 0),
        ("evaluated", 1, rows[1]["test_accuracy"]),
        ("augmented", 1, rows[1]["new_examples"]),
        ("done", 1),
        ("evaluated", 2, rows[2]["test_accuracy"]),
        ("done", 2),
    ]
    assert all(r["recorded"] for r in rows) and "stage_seconds" in rows[0]
    assert {e[1] for e in recorder.events if e[0] == "stage"} == {
        "teacher",
        "writes",
    }  # the stand-in trains nothing
