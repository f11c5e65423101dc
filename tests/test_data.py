"""Sources, seed sampling, leakage checks, tokenization limits and the per-iteration tfds shards."""

import collections
from collections import Counter

import pytest

from llm2llm_jax.data import offline, shards, sources
from llm2llm_jax.data.leakage import LeakageChecker
from llm2llm_jax.data.offline import load_trec
from llm2llm_jax.data.sampling import sample_seed, stratified_split
from llm2llm_jax.data.tables import DataError, check_labels, read_table
from llm2llm_jax.data.tasks import TASKS
from llm2llm_jax.data.tfds_source import load_tfds
from llm2llm_jax.student.batching import tokenize_examples

TREC_COUNTS = {"ABBR": 86, "DESC": 1162, "ENTY": 1250, "HUM": 1223, "LOC": 835, "NUM": 896}


def test_offline_trec_end_to_end():
    rows = load_trec()
    assert len(rows) == 5452
    assert dict(collections.Counter(r["output"] for r in rows)) == TREC_COUNTS
    train, test = stratified_split(rows, 500, seed=0)
    assert len(train) == 4952 and len(test) == 500
    assert not {r["id"] for r in train} & {r["id"] for r in test}
    fine = load_trec(fine=True)
    assert len({r["output"] for r in fine}) == 50


def test_offline_sentiment_and_topic_sets():
    """The two classification sets built from public data inside PyPI wheels: Rotten Tomatoes snippets (fresh
    / rotten) and ten newsgroups of 20 Newsgroups with its own test split, each post cut to its first
    words."""
    rt = offline.load_rotten_tomatoes()
    assert len(rt) == 12752 and Counter(r["output"] for r in rt) == {"positive": 7368, "negative": 5384}
    assert len({r["input"] for r in rt}) == len(rt)
    train, test = offline.load_newsgroups("train"), offline.load_newsgroups("test")
    assert (len(train), len(test)) == (5378, 3601)
    assert set(Counter(r["output"] for r in train)) == set(TASKS["newsgroups"].labels)
    assert min(Counter(r["output"] for r in test).values()) >= 300
    assert max(len(r["input"].split()) for r in train) <= offline.NEWSGROUP_WORDS
    assert (
        offline.newsgroup_post(
            "re saturn pricing in article c vir l r shuksan ds boeing com fredd writes i have been "
            "defending saturn",
            6,
        )
        == "re saturn pricing i have been"
    )
    from configs.base import base_config

    c = base_config().data
    c.source, c.test_count = "newsgroups_offline", 500
    _, shuffled_test = sources.load_source(c, TASKS["newsgroups"])
    assert (
        len(Counter(r["output"] for r in shuffled_test[:200])) == 10
    )  # the first rows are a sample of every topic


def test_stratified_seed_sampling_keeps_proportions_and_is_reproducible():
    rows = load_trec()
    seed_a, _ = sample_seed(rows, seed=3, count=545)
    seed_b, _ = sample_seed(rows, seed=3, count=545)
    seed_c, _ = sample_seed(rows, seed=4, count=545)
    assert [r["id"] for r in seed_a] == [r["id"] for r in seed_b]
    assert [r["id"] for r in seed_a] != [r["id"] for r in seed_c]
    counts = collections.Counter(r["output"] for r in seed_a)
    for label, total in TREC_COUNTS.items():
        assert abs(counts[label] - total * 545 / 5452) <= 1
    assert all(r["origin"] == "seed" and r["iteration"] == 0 for r in seed_a)
    assert len(sample_seed(rows, seed=0, fraction=0.01)[0]) == 54  # of 5381 distinct inputs (71 repeats)


def test_seed_counts_are_the_largest_remainder_allocation():
    """Floors of the exact shares, and the leftover examples to the labels with the largest remainders."""
    from llm2llm_jax.data.sampling import _allocate

    assert _allocate({"a": 5, "b": 3, "c": 2}, 7) == {"a": 4, "b": 2, "c": 1}  # exact 3.5, 2.1, 1.4
    rows = [
        {"input": f"{label}{k}", "output": label}
        for label, n in (("x", 50), ("y", 30), ("z", 20))
        for k in range(n)
    ]
    counts = collections.Counter(r["output"] for r in sample_seed(rows, seed=0, count=7)[0])
    assert counts == {"x": 4, "y": 2, "z": 1}


def test_a_seed_set_keeps_its_size_and_labels_when_drawn_rows_repeat_or_leak():
    """Drawn rows that repeat an input already drawn, or duplicate a test example, are replaced by others of
    their label; a draw that needed no replacement is the plain stratified draw."""
    from llm2llm_jax.data.sampling import duplicate_lines, stratified_sample

    rows = [{"input": f"q{k}", "output": "ab"[k % 2], "source_line": k + 1} for k in range(40)]
    rows += [dict(rows[k], source_line=41 + k) for k in range(0, 40, 2)]  # 20 exact repeats of label a
    plain = stratified_sample(rows, 12, seed=5)
    leaking = {rows[plain[0]]["input"], rows[plain[-1]]["input"]}
    seed_set, replaced = sample_seed(rows, seed=5, count=12, unusable=lambda ex: ex["input"] in leaking)
    inputs = [ex["input"] for ex in seed_set]
    assert len(seed_set) == 12 and len(set(inputs)) == 12 and not leaking & set(inputs)
    assert collections.Counter(ex["output"] for ex in seed_set) == collections.Counter(
        rows[i]["output"] for i in plain
    )
    assert replaced >= 2
    clean = rows[:40]  # no repeats, nothing leaking: the plain draw, unchanged
    assert [ex["input"] for ex in sample_seed(clean, seed=5, count=12)[0]] == [
        clean[i]["input"] for i in stratified_sample(clean, 12, seed=5)
    ]
    assert duplicate_lines(rows) == (20, [41, 43, 45, 47, 49])


def test_a_seed_set_larger_than_the_pool_names_the_key_and_the_file():
    rows = [{"input": f"q{k}", "output": "a"} for k in range(5)] + [{"input": "q0", "output": "a"}]
    with pytest.raises(DataError) as err:
        sample_seed(rows, seed=0, count=9, source="train.jsonl")
    assert str(err.value) == "config.data.seed_count=9: train.jsonl has 6 examples; ask for fewer"
    with pytest.raises(
        DataError, match=r"config.data.seed_count=6: train.jsonl has too few distinct examples"
    ):
        sample_seed(rows, seed=0, count=6, source="train.jsonl")


def test_planted_test_duplicates_are_caught():
    rows = load_trec()
    train, test = stratified_split(rows, 300, seed=1)
    checker = LeakageChecker(r["input"] for r in test)
    planted = [
        dict(test[0], id="dup-exact"),
        dict(test[1], id="dup-case", input=test[1]["input"].upper() + "  "),
        dict(test[2], id="dup-edit", input=test[2]["input"].replace("?", "") + " please ?"),
    ]
    candidates = train[:200] + planted
    kept, report = checker.filter(candidates)
    assert {"dup-exact", "dup-case", "dup-edit"} <= set(report["dropped_ids"])
    assert report["exact"] >= 2 and report["ngram"] >= 1
    # the legitimate training questions are (nearly) all kept: the filter is not trigger-happy
    assert len(kept) >= 195


def test_read_table_formats_and_errors(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        '{"text": "good film", "label": "positive"}\n\n{"text": "bad", "label": "negative"}\n'
    )
    rows = read_table(str(tmp_path / "a.jsonl"), "text", "label")
    assert [r["output"] for r in rows] == ["positive", "negative"] and rows[1]["source_line"] == 3
    (tmp_path / "b.csv").write_text('text,label\n"a, quoted",positive\nplain,negative\n')
    assert read_table(str(tmp_path / "b.csv"), "text", "label")[0]["input"] == "a, quoted"
    (tmp_path / "c.tsv").write_text("text\tlabel\nhello\tpositive\n")
    assert read_table(str(tmp_path / "c.tsv"), "text", "label")[0]["output"] == "positive"

    (tmp_path / "bad.jsonl").write_text('{"text": "ok", "label": "positive"}\n{"text": "oops", "label": }\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid JSON"):
        read_table(str(tmp_path / "bad.jsonl"), "text", "label")
    (tmp_path / "missing.jsonl").write_text('{"text": "ok", "label": "positive"}\n{"text": "no label"}\n')
    with pytest.raises(DataError, match=r"missing.jsonl:2: field 'label' is missing"):
        read_table(str(tmp_path / "missing.jsonl"), "text", "label")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv"):
        read_table(str(tmp_path / "empty.csv"), "text", "label")
    (tmp_path / "latin1.tsv").write_bytes("text\tlabel\ncaf\xe9\tpositive\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.tsv:2: not valid UTF-8 \(byte 0xe9 at column 4\)"):
        read_table(str(tmp_path / "latin1.tsv"), "text", "label")
    (tmp_path / "nohead.csv").write_text("sentence,label\nx,positive\n")
    with pytest.raises(DataError, match=r"nohead.csv:1: header has no column 'text'"):
        read_table(str(tmp_path / "nohead.csv"), "text", "label")
    (tmp_path / "extra.csv").write_text("text,label\nx,positive,surplus\n")
    with pytest.raises(DataError, match=r"extra.csv:2: 3 cells"):
        read_table(str(tmp_path / "extra.csv"), "text", "label")


def test_labels_outside_the_label_set_name_the_line(tmp_path):
    (tmp_path / "s.jsonl").write_text('{"t": "fine", "y": "positive"}\n{"t": "meh", "y": "neutral"}\n')
    rows = read_table(str(tmp_path / "s.jsonl"), "t", "y")
    with pytest.raises(DataError) as err:
        check_labels(rows, TASKS["sst2"], str(tmp_path / "s.jsonl"), output_field="y", input_field="t")
    assert str(err.value) == (
        f"{tmp_path / 's.jsonl'}:2: label 'neutral' is not one of [negative, positive] (task sst2) "
        f"(config.data.output_field='y')"
    )


def test_tokenization_truncates_or_drops_long_examples(smollm2):
    tok = smollm2[2]
    task = TASKS["sst2"]
    rows = [{"input": "great " * 300, "output": "positive"}, {"input": "short and bad", "output": "negative"}]
    examples, stats = tokenize_examples(task, rows, tok, max_length=64)
    assert stats == {"truncated": 1, "dropped": 0}
    long = examples[0]
    assert len(long.prompt_ids) + len(long.target_ids) <= 64
    prompt = tok.decode(long.prompt_ids)  # the input cut, the instruction and the cue kept
    assert prompt.startswith(task.instruction) and prompt.endswith("Sentiment:") and "great great" in prompt
    assert tok.decode(long.target_ids) == " positive<|im_end|>"
    _, stats = tokenize_examples(task, rows, tok, max_length=64, policy="drop")
    assert stats == {"truncated": 0, "dropped": 1}
    # too short for even the instruction: the prompt's start goes, the cue stays
    tiny, stats = tokenize_examples(task, rows, tok, max_length=12)
    assert stats["truncated"] == 2 and all(len(e.prompt_ids) + len(e.target_ids) == 12 for e in tiny)
    assert all(tok.decode(e.prompt_ids).endswith("Sentiment:") for e in tiny)


def _records(n, iteration=0):
    return [
        {
            "id": f"s{i}",
            "input": f"question {i} – ünïcode",
            "output": "HUM",
            "origin": "seed",
            "parent_id": "",
            "iteration": iteration,
        }
        for i in range(n)
    ]


def test_shard_round_trip_and_resumable_write(tmp_path):
    records = _records(25)
    shards.write_iteration(str(tmp_path), 0, records)
    assert shards.is_written(str(tmp_path), 0) and not shards.is_written(str(tmp_path), 1)
    assert shards.read_iteration(str(tmp_path), 0) == records
    grown = records + [
        {"id": "t0", "input": "new", "output": "LOC", "origin": "teacher", "parent_id": "s3", "iteration": 1}
    ]
    shards.write_iteration(str(tmp_path), 1, grown)
    assert shards.read_iteration(str(tmp_path), 1) == grown
    assert shards.read_iteration(str(tmp_path), 0) == records  # earlier iterations untouched
    # writing a completed iteration again is a no-op (resume), not a rewrite
    shards.write_iteration(str(tmp_path), 0, _records(3))
    assert len(shards.read_iteration(str(tmp_path), 0)) == 25
    # the array_record files are real tfds datasets: readable by tfds by name from the data_dir
    import tensorflow_datasets as tfds

    source = tfds.data_source("llm2llm_shards/iteration_0001", data_dir=str(tmp_path), split="train")
    assert len(source) == 26


@pytest.mark.slow
def test_tfds_by_name_reads_a_prepared_dataset_and_explains_offline_failures(tmp_path):
    shards.write_iteration(str(tmp_path), 0, _records(4))
    rows = load_tfds("llm2llm_shards/iteration_0000", "train", "input", "output", data_dir=str(tmp_path))
    assert [r["input"] for r in rows] == [r["input"] for r in _records(4)]
    with pytest.raises(DataError, match=r"huggingface:sst2.*supply the data as a file"):
        load_tfds("huggingface:sst2", "train", "sentence", "label", data_dir=str(tmp_path / "empty"))


def test_a_huggingface_source_goes_through_the_datasets_package_and_tfds_conversion():
    """configs/sst2.py reads `huggingface:glue/sst2`: tfds's builder imports `datasets` lazily and converts
    each row with its feature converters. Offline, the chain is run on a small `datasets.Dataset` of GLUE's
    schema."""
    import datasets
    import numpy as np
    from tensorflow_datasets.core.utils import conversion_utils, huggingface_utils
    from tensorflow_datasets.core.utils.lazy_imports_utils import datasets as lazy_datasets

    from llm2llm_jax.data.tfds_source import examples_from_records

    assert (
        lazy_datasets.Dataset is datasets.Dataset
    )  # the builder's lazy import resolves to the installed package
    glue_sst2 = datasets.Features(
        {
            "sentence": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["negative", "positive"]),
            "idx": datasets.Value("int32"),
        }
    )
    rows = datasets.Dataset.from_dict(
        {"sentence": ["a gorgeous film", "dull and overlong"], "label": [1, 0], "idx": [0, 1]},
        features=glue_sst2,
    )
    features = huggingface_utils.convert_hf_features(rows.features)
    records = [
        features.decode_example_np(features.encode_example(conversion_utils.to_tfds_value(rows[i], features)))
        for i in range(len(rows))
    ]
    assert isinstance(records[0]["label"], (int, np.integer))
    examples = examples_from_records(records, features, "huggingface:glue/sst2[train]", "sentence", "label")
    assert [(e["input"], e["output"]) for e in examples] == [
        ("a gorgeous film", "positive"),
        ("dull and overlong", "negative"),
    ]
    assert examples[0]["id"] == "huggingface:glue/sst2-train-0"
    check_labels(examples, TASKS["sst2"], "huggingface:glue/sst2")


def test_an_unreachable_hub_is_one_line_after_its_retries(tmp_path, monkeypatch, capfd):
    """No network (as here): the hub client retries with backoff (its sleeps skipped in this test), then the
    source fails with one DataError line that says how to supply the data, and no retry chatter."""
    import datasets
    import huggingface_hub
    import huggingface_hub.utils._http as hub_http

    slept = []
    monkeypatch.setattr(hub_http.time, "sleep", slept.append)
    # Nothing listens there: the same failure on a machine with or without a network.
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(DataError) as failure:
        load_tfds("huggingface:glue/sst2", "train", "sentence", "label", data_dir=str(tmp_path))
    assert len(slept) >= 3  # the hub client did retry
    message = str(failure.value)
    assert (
        "\n" not in message
        and "tfds dataset 'huggingface:glue/sst2' (split 'train') is not available" in message
    )
    assert "data.source='file'" in message
    assert "Retrying" not in capfd.readouterr().err
