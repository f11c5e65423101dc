"""The model card of a run's exported student (`student/README.md`), in the Hugging Face hub's format: a YAML
header, then how the student was trained, its prompt format with one worked example, its accuracy per
iteration, which iteration was selected and why, and its limits."""

from __future__ import annotations

from collections.abc import Sequence

from llm2llm_jax.model.loading import OFFLINE_ORIGINS
from llm2llm_jax.student import prompting


def base_model(config) -> tuple[str, str]:
    """(the base model's name, its license as far as it is known)."""
    if config.model.source in OFFLINE_ORIGINS:
        return OFFLINE_ORIGINS[config.model.source]
    return config.model.path, "other"


def _header(config, task_name: str) -> list[str]:
    name, license_ = base_model(config)
    return [
        "---",
        f"base_model: {name}",
        f"license: {license_}",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        f"tags: [llm2llm, llm2llm-jax, {task_name}]",
        f"datasets: [{config.data.tfds_name or config.data.source}]",
        "---",
        "",
    ]


def _accuracy_table(rows: Sequence[dict], selected: int) -> list[str]:
    lines = [
        "| iteration | training examples | dev accuracy [95% CI] | test accuracy [95% CI] | |",
        "| ---: | ---: | --- | --- | --- |",
    ]
    for r in rows:
        dev = (
            f"{r['dev_accuracy']:.1%} [{r['dev_accuracy_low']:.1%}, {r['dev_accuracy_high']:.1%}]"
            if "dev_accuracy" in r
            else "(no dev split)"
        )
        test = f"{r['test_accuracy']:.1%} [{r['test_accuracy_low']:.1%}, {r['test_accuracy_high']:.1%}]"
        mark = "selected" if r["iteration"] == selected else ""
        lines.append(f"| {r['iteration']} | {r['train_size']} | {dev} | {test} | {mark} |")
    return lines


def _prompt_example(task, example: dict, tokenizer, fmt: str) -> list[str]:
    prompt_ids, target_ids = prompting.example_ids(task, example, tokenizer, fmt)
    text = tokenizer.decode(prompt_ids) + tokenizer.decode(target_ids)
    return ["```", text, "```"]


def _training(config, rows: Sequence[dict], selected: int, why: str) -> list[str]:
    t = config.teacher
    kept = sum(r.get("new_examples", 0) for r in rows)
    recipe = f"LoRA rank {config.model.lora_rank}" if config.model.lora_rank else "full fine-tuning"
    epochs = f"{config.train.epochs} epochs"
    if config.train.epoch_selection == "dev_loss":
        kept_epoch = next((r for r in rows if r["iteration"] == selected), {}).get("kept_epoch")
        epochs = f"up to {epochs}, the one with the least dev loss kept (epoch {kept_epoch} for this student)"
    return [
        "## How it was trained",
        "",
        f"- Seed set: {rows[0]['train_size']} examples ({config.data.source}); {kept} new examples kept over "
        f"{len(rows)} iteration(s); the training set with its provenance is the run's `dataset/` "
        "([data card](../dataset/README.md)).",
        f"- Teacher: `{t.kind}` `{t.model or '(its default)'}`; recipe: {epochs}, "
        f"learning rate {config.train.learning_rate}, batch {config.train.batch_size}, {recipe}.",
        f"- Selected: iteration {selected}, {why}. The test set chose nothing.",
        "",
    ]


def card(
    config, task, rows: Sequence[dict], selected: int, why: str, example: dict, tokenizer, fmt: str
) -> str:
    """The card's text; `example` is one seed example, shown as the student reads and answers it."""
    name, license_ = base_model(config)
    lines = [
        *_header(config, task.name),
        f"# {task.name} student, fine-tuned with LLM2LLM",
        "",
        f"A fine-tune of `{name}` for the task `{task.name}`, trained by llm2llm-jax with the method "
        f"`{config.method}`: fine-tune on a small seed set, find the seed examples the student gets wrong, "
        "have a teacher write new examples from exactly those, and repeat.",
        "",
        *_training(config, rows, selected, why),
        f"## Prompt format (`{fmt}`)",
        "",
        "The student reads the prompt and writes the answer after it; one seed example:",
        "",
        *_prompt_example(task, example, tokenizer, fmt),
        "",
        "## Accuracy per iteration",
        "",
        *_accuracy_table(rows, selected),
        "",
        "Intervals are Wilson's for one run on these examples; another seed set or batch order moves a small "
        "fine-tune by several points (`python launch/compare.py` measures that).",
        "",
        "## Limits",
        "",
        f"Trained for `{task.name}` only, on {rows[-1]['train_size']} examples, many of them written by the "
        "teacher and kept by automatic filters, not read by a person. Its license is the base model's "
        f"(`{license_}`).",
        "",
    ]
    return "\n".join(lines)
