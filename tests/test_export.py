"""The augmented dataset as an artifact: the last iteration's training set with provenance and a data card,
loadable with `datasets` and with tfds, equal to what the last iteration trained on."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from oracle_run import OracleRun, _oracle_config, _oracle_teacher

from llm2llm_jax.common import files
from llm2llm_jax.data import shards
from llm2llm_jax.data.export import tfds_path


def test_the_final_training_set_is_exported_with_a_data_card(tmp_path):
    config = _oracle_config(tmp_path, "run")
    run = OracleRun(config, _oracle_teacher(tmp_path / "run"))
    rows = run.run()
    workdir = str(tmp_path / "run")
    exported = files.read_jsonl(os.path.join(workdir, "dataset", "train.jsonl"))
    trained = shards.read_iteration(os.path.join(workdir, "shards"), rows[-1]["iteration"])
    assert [ex["input"] for ex in exported] == [ex["input"] for ex in trained]
    assert sorted(ex["input"] for ex in exported) == run.trained_on[-1]  # what the last fine-tune was given
    assert len(exported) == rows[-1]["train_size"] == 29
    seeds = [ex for ex in exported if ex["origin"] == "seed"]
    added = [ex for ex in exported if ex["origin"] != "seed"]
    assert len(seeds) == 11 and "teacher" not in seeds[0]
    assert all(
        ex["teacher"] == "scripted:" + config.teacher.model
        and ex["parent_id"] in {s["id"] for s in seeds}
        and ex["iteration"] in (1, 2)
        for ex in added
    )

    import datasets
    import tensorflow_datasets as tfds

    hf = datasets.load_dataset(
        "json", data_files=os.path.join(workdir, "dataset", "train.jsonl"), split="train"
    )
    assert hf["input"] == [ex["input"] for ex in exported] and hf["output"] == [
        ex["output"] for ex in exported
    ]
    source = tfds.builder_from_directory(tfds_path(workdir, rows[-1]["iteration"])).as_data_source()["train"]
    assert [source[i]["input"].decode() for i in range(len(source))] == [ex["input"] for ex in exported]

    card = (tmp_path / "run" / "dataset" / "README.md").read_text()
    assert "29 examples: 11 seed, 18 teacher" in card
    assert (
        "| HUM | 1 | 0 | 1 |" in card
        and "| ENTY | 2 | 6 | 8 |" in card
        and "label_mismatch 12" in card
        and '"task": "trec"' in card
    )
    assert (
        os.path.relpath(tfds_path(workdir, rows[-1]["iteration"]), workdir) in card
        and workdir not in card.split("```")[0]
    )
