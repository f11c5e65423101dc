"""The student a run delivers: a dev split beside the seed set, the iteration chosen by dev accuracy (the test
set never chooses), its weights exported as an HF directory that transformers loads and predicts with as this
project does, the PEFT adapter of a LoRA student, and the predict command."""

import json
import os
import subprocess
import sys
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

import loop_harness
from oracle_run import OracleRun, _oracle_config, _oracle_teacher, _scripted

from configs.base import base_config
from llm2llm_jax.common import files
from llm2llm_jax.data.leakage import LeakageChecker
from llm2llm_jax.data.sources import run_data
from llm2llm_jax.data.tables import DataError
from llm2llm_jax.data.tasks import TASKS
from llm2llm_jax.run.selection import improves, select


# ---------------------------------------------------------------------------- the dev split
def _trec_data(**fields):
    d = base_config().data
    d.source, d.seed_count, d.test_count = "trec_offline", 60, 500
    d.update(fields)
    return d


def test_the_dev_split_is_stratified_and_shares_nothing_with_the_seed_or_test_sets():
    without = run_data(_trec_data(), TASKS["trec"], seed=0)
    data = run_data(_trec_data(dev_count=120), TASKS["trec"], seed=0)
    assert [ex["id"] for ex in data.seed] == [ex["id"] for ex in without.seed] and without.dev == []
    assert len(data.dev) == 120 and len({ex["id"] for ex in data.dev}) == 120
    ids = {ex["id"] for ex in data.dev}
    assert not ids & {ex["id"] for ex in data.seed} and not ids & {ex["id"] for ex in data.test}
    leaks = LeakageChecker([ex["input"] for ex in data.test + data.seed])
    assert not [ex for ex in data.dev if leaks.check(ex["input"])] and data.dev_leaks > 0
    # stratified: each class's share of the 120 within one example of its share of the 4952-row pool
    pool = Counter(ex["output"] for ex in without.test)  # same label mix as the pool, to a rounding
    dev = Counter(ex["output"] for ex in data.dev)
    for label, n in dev.items():
        assert abs(n - 120 * pool[label] / sum(pool.values())) <= 3, (label, n)
    fraction = run_data(_trec_data(dev_count=0, dev_fraction=0.05), TASKS["trec"], seed=0)
    assert 230 <= len(fraction.dev) <= 250


def test_a_dev_split_larger_than_the_pool_names_the_config_keys():
    with pytest.raises(
        DataError, match=r"^config.data.dev_count=99999, dev_fraction=0.0: a dev split of 99999"
    ):
        run_data(_trec_data(dev_count=99999), TASKS["trec"], seed=0)


# ---------------------------------------------------------------------------- selection
def _row(i, test, dev=None):
    row = {"iteration": i, "test_accuracy": test}
    if dev is not None:
        row.update(dev_accuracy=dev, dev_count=50)
    return row


def test_the_selected_iteration_is_the_best_on_dev_never_on_test():
    rows = [_row(0, 0.50, 0.60), _row(1, 0.90, 0.58), _row(2, 0.40, 0.70), _row(3, 0.95, 0.70)]
    selected, why = select(rows)
    assert selected == 2  # the test set would say 3, and 3 ties 2 on dev: the earlier is kept
    assert (
        why == "the best dev accuracy, 70.0% of 50 dev examples (tied with iteration 3: the earlier is kept)"
    )
    assert select([_row(0, 0.9), _row(1, 0.1)]) == (
        1,
        "the last iteration (no dev split: data.dev_count is 0)",
    )
    assert improves(rows[:2], 0.61) and not improves(rows[:3], 0.70) and improves(rows, None)


# ---------------------------------------------------------------------------- a run's exported student
def _run(workdir, gguf=False, **model_changes):
    from llm2llm_jax.run.controller import run_from_config

    config = loop_harness.small_config(str(workdir), iterations=2)
    config.data.dev_count = 24
    config.export.gguf = gguf
    cfg, params, tok = loop_harness.tiny_student()
    if model_changes:  # a LoRA student: the run adds fresh adapters to the base weights
        cfg = cfg.replace(**model_changes)
        config.model.lora_rank, config.model.lora_alpha = cfg.lora_rank, cfg.lora_alpha

    rows = run_from_config(config, model=(cfg, params, tok), teacher=_scripted(workdir))
    return config, rows, (cfg, params, tok)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("exported") / "run"
    config, rows, model = _run(workdir, gguf=True)
    return workdir, config, rows, model


def _kept_params(workdir, model):
    from llm2llm_jax.model.lora import add_lora_params
    from llm2llm_jax.student import kept

    cfg, params, _ = model
    template = jax.tree.map(np.asarray, add_lora_params(params, cfg, jax.random.PRNGKey(0)))
    return kept.restore(str(workdir / "kept_student"), template)


@pytest.mark.slow
def test_the_run_exports_the_selected_student_and_transformers_predicts_as_we_do(exported):
    import torch
    from conftest import torch_logits
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm2llm_jax.model.llama import forward
    from llm2llm_jax.run.layout import RunDirectory
    from llm2llm_jax.student import kept, prompting
    from llm2llm_jax.student.decode import left_pad
    from llm2llm_jax.student.saved import SavedStudent

    workdir, config, rows, model = exported
    student = workdir / "student"
    usual = 0o666 & ~files._UMASK  # what open() gives: readable by whoever serves the model
    assert all(os.stat(p).st_mode & 0o777 == usual for p in student.rglob("*") if p.is_file())
    assert os.stat(student).st_mode & 0o777 == 0o777 & ~files._UMASK
    assert {
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "llm2llm.json",
        "README.md",
    } <= {p.name for p in student.iterdir()}
    selected, why = select(rows)
    meta = json.loads((student / "llm2llm.json").read_text())
    assert (meta["selected_iteration"], meta["selected_because"]) == (selected, why)
    assert kept.kept_step(str(workdir / "kept_student")) == RunDirectory(str(workdir)).model_of(selected)
    hf = AutoModelForCausalLM.from_pretrained(str(student), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(student))
    test = [json.loads(line) for line in (workdir / "data" / "test.jsonl").read_text().splitlines()][:50]
    prompts = [prompting.prompt_ids(TASKS["trec"], ex, tok, "plain") for ex in test]
    # the logits: transformers on the export, this project on the kept weights
    ids, mask = left_pad(prompts[:8], tok.pad_token_id)
    want = torch_logits(hf, ids.astype(np.int64), mask.astype(np.int64))
    got = np.asarray(forward(model[0], _kept_params(workdir, model), jnp.asarray(ids), jnp.asarray(mask)))
    assert np.abs(got - want)[mask.astype(bool)].max() <= 1e-4
    # greedy answers on 50 test questions: transformers' generate and the saved student's predictor
    theirs = []
    with torch.no_grad():
        for prompt in prompts:
            out = hf.generate(
                torch.tensor([prompt]),
                attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                max_new_tokens=config.eval.max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )
            theirs.append(TASKS["trec"].parse(tok.decode(out[0, len(prompt) :], skip_special_tokens=True)))
    ours = SavedStudent.load(str(workdir), dtype="float32").predict(
        [ex["input"] for ex in test], mode="generate"
    )
    assert [r["prediction"] for r in ours] == theirs
    card = (student / "README.md").read_text()
    assert card.startswith("---\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\nlicense: apache-2.0\n")
    assert (
        f"Selected: iteration {selected}, {why}. The test set chose nothing." in card
        and "| selected |" in card
    )
    report = (workdir / "report.md").read_text()
    assert f"Selected student: iteration {selected}, {why}" in report and "dev accuracy [95% CI]" in report
    assert all("dev_accuracy" in r and r["dev_count"] == 24 for r in rows)


@pytest.mark.slow
def test_a_lora_students_adapter_on_its_base_equals_the_merged_export(tmp_path):
    import torch
    from conftest import random_batch, torch_logits
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from llm2llm_jax.model.weights import save_hf_checkpoint

    _, _, (cfg, params, _) = _run(tmp_path / "run", lora_rank=4, lora_alpha=8.0)
    student = tmp_path / "run" / "student"
    assert json.loads((student / "adapter" / "adapter_config.json").read_text())["r"] == 4
    save_hf_checkpoint(params, cfg.replace(lora_rank=0), str(tmp_path / "base"), dtype="float32")
    base = AutoModelForCausalLM.from_pretrained(str(tmp_path / "base"), dtype=torch.float32).eval()
    ids, mask = random_batch(cfg.vocab_size, length=12)
    plain = torch_logits(base, ids, mask)
    adapted = torch_logits(PeftModel.from_pretrained(base, str(student / "adapter")).eval(), ids, mask)
    merged = torch_logits(
        AutoModelForCausalLM.from_pretrained(str(student), dtype=torch.float32).eval(), ids, mask
    )
    valid = mask.astype(bool)
    assert np.abs(adapted - merged)[valid].max() <= 1e-4
    assert np.abs(plain - merged)[valid].max() > 1e-3  # the trained adapters change the model


@pytest.mark.slow
def test_a_gguf_asked_for_after_the_run_finished_is_added_by_the_next_invocation(exported, tmp_path):
    import shutil

    workdir = tmp_path / "run"
    shutil.copytree(exported[0], workdir)
    (workdir / "student" / "model-f16.gguf").unlink()
    (workdir / "run.lock").unlink(missing_ok=True)
    card = (workdir / "student" / "README.md").read_bytes()
    _run(workdir, gguf=True)  # every iteration is done: only the export runs
    assert (workdir / "student" / "model-f16.gguf").read_bytes() == (
        exported[0] / "student" / "model-f16.gguf"
    ).read_bytes()
    assert (workdir / "student" / "README.md").read_bytes() == card


def _logits(cfg, params, tok, texts):
    from llm2llm_jax.model.llama import forward
    from llm2llm_jax.student.decode import left_pad

    ids, mask = left_pad([tok(t)["input_ids"] for t in texts], tok.pad_token_id)
    return np.asarray(forward(cfg, params, jnp.asarray(ids), jnp.asarray(mask))), ids, mask


TEXTS = [
    "What is the capital of Peru ?",
    "Who wrote Hamlet ?\nClass:",
    "How far away is the Moon from the Earth ?",
]


@pytest.mark.slow
def test_the_gguf_export_reads_back_here_and_in_transformers(exported):
    from conftest import hf_model_from_gguf, torch_logits

    from llm2llm_jax.model.weights import load_gguf_checkpoint

    workdir, _, _, model = exported
    path = workdir / "student" / "model-f16.gguf"
    cfg, params = load_gguf_checkpoint(str(path), progress=False)
    assert cfg.num_hidden_layers == model[0].num_hidden_layers and cfg.tie_word_embeddings
    kept_logits, ids, mask = _logits(model[0], _kept_params(workdir, model), model[2], TEXTS)
    gguf_logits, _, _ = _logits(cfg, params, model[2], TEXTS)
    valid = mask.astype(bool)
    scale = np.abs(kept_logits[valid]).max()
    assert np.abs(gguf_logits - kept_logits)[valid].max() <= 1e-2 * scale  # f16 weights
    hf = hf_model_from_gguf(str(path))
    theirs = torch_logits(hf, ids.astype(np.int64), mask.astype(np.int64))
    assert np.abs(theirs - gguf_logits)[valid].max() <= 1e-4  # the same f16 weights, read by both


@pytest.mark.slow
@pytest.mark.parametrize("gguf_type", ["bf16", "q8_0"])
def test_gguf_export_types_and_a_tokenizer_built_from_tokenizer_json(tmp_path, gguf_type):
    from llm2llm_jax.model.loading import load_gguf_tokenizer
    from llm2llm_jax.model.weights import load_gguf_checkpoint
    from llm2llm_jax.student.gguf_export import export_gguf

    cfg, params, tok = loop_harness.tiny_student()
    path = str(tmp_path / f"tiny-{gguf_type}.gguf")
    export_gguf(params, cfg, tok, path, gguf_type, source_gguf=None, name="tiny")
    read_cfg, read = load_gguf_checkpoint(path, progress=False)
    want, _, mask = _logits(cfg, params, tok, TEXTS)
    got, _, _ = _logits(read_cfg, read, tok, TEXTS)
    valid = mask.astype(bool)
    assert np.abs(got - want)[valid].max() <= 5e-2 * np.abs(want[valid]).max()
    rebuilt = load_gguf_tokenizer(path)
    assert all(rebuilt(t)["input_ids"] == tok(t)["input_ids"] for t in TEXTS)


def test_a_gguf_export_it_cannot_write_says_so_in_one_line(tmp_path):
    from llm2llm_jax.student.gguf_export import GGUFExportError, export_gguf

    cfg, params, tok = loop_harness.tiny_student()
    cfg = cfg.replace(rope_scaling=(("rope_type", "llama3"), ("factor", 8.0)))
    with pytest.raises(GGUFExportError, match="set export.gguf=False") as caught:
        export_gguf(params, cfg, tok, str(tmp_path / "x.gguf"), "f16", source_gguf=None, name="x")
    assert "\n" not in str(caught.value) and not (tmp_path / "x.gguf").exists()


def _predict(*args):
    return subprocess.run(
        [sys.executable, "-m", "llm2llm_jax.predict", *map(str, args), "--no-progress"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_the_predict_command_answers_every_row_and_refuses_bad_input_in_one_line(exported, tmp_path):
    workdir = exported[0]
    table = tmp_path / "in.csv"
    table.write_text(
        "input,note\nWhat is the capital of Peru ?,a\nWho wrote Hamlet ?,b\nHow far is the Moon ?,c\n"
    )
    proc = _predict(workdir, "--input", table, "--output", tmp_path / "out.jsonl")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["input"] for r in rows] == [
        "What is the capital of Peru ?",
        "Who wrote Hamlet ?",
        "How far is the Moon ?",
    ]
    assert all(set(r) == {"input", "generation", "prediction"} for r in rows)
    data_parallel = f"{jax.device_count()},1,1"  # every device on the data axis instead of the fsdp axis
    other = _predict(workdir, "--input", table, "--output", tmp_path / "dp.jsonl", "--mesh", data_parallel)
    assert other.returncode == 0, other.stderr[-1500:]
    assert (tmp_path / "dp.jsonl").read_text() == (tmp_path / "out.jsonl").read_text()
    scored = _predict(
        workdir / "student", "--input", table, "--output", tmp_path / "scored.jsonl", "--mode", "score"
    )
    assert scored.returncode == 0 and all(
        set(json.loads(line)["logprobs"]) == set(TASKS["trec"].labels)
        for line in (tmp_path / "scored.jsonl").read_text().splitlines()
    )

    (tmp_path / "no_field.csv").write_text("question\nWhat is it ?\n")
    (tmp_path / "empty.jsonl").write_text("\n")
    oracle = _oracle_config(tmp_path, "oracle_run")
    OracleRun(oracle, _oracle_teacher(tmp_path / "oracle_run")).run()  # a finished run without a student
    cases = [
        ((workdir, "--input", tmp_path / "no_field.csv"), "no_field.csv:1: header has no column 'input'"),
        ((workdir, "--input", tmp_path / "empty.jsonl"), "empty.jsonl: no rows"),
        ((tmp_path, "--input", table), "not a saved student"),
        ((tmp_path / "oracle_run", "--input", table), "a run directory without an exported student"),
        ((workdir, "--input", table, "--mesh", "1,-1,1,1"), "give three comma-separated sizes"),
    ]
    for args, expected in cases:
        proc = _predict(*args, "--output", tmp_path / "x.jsonl")
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], proc.stderr[-1500:]
