"""Teacher prompts per task (rules, one worked example, the wrong example) and parsing of numbered replies."""

from __future__ import annotations

import re
from typing import Mapping, Optional

from llm2llm_jax.tasks import Task

_RULES = """You write new training examples for a student model that is learning a task:
{description}
You are shown one example the student got wrong, with the correct output and the student's output.
Write {{k}} NEW example(s) of the same kind and difficulty that teach what the student missed.
Rules:
- Each new example must be different from the one shown (new wording, new details), not a copy.
- Each output must be correct for its input.
{output_rule}
- Reply with only a numbered list, each item exactly in this format:
1. {in_key}: <text>
   {out_key}: <output>"""

_DESCRIPTIONS = {
    "sst2": "classify the sentiment of a movie review as positive or negative.",
    "trec": "classify what a question asks for: abbreviation, description, entity, human, location or number.",
    "snips": "classify the intent of a voice-assistant request.",
    "gsm8k": "solve grade-school math word problems step by step.",
    "casehold": "choose which of five holdings (A-E) a legal citing text refers to.",
}

_WORKED = {
    "sst2": ({"input": "the plot is thin but the performances are wonderful", "output": "positive"},
             {"input": "despite a clumsy opening, the film's warmth wins you over", "output": "positive"}),
    "trec": ({"input": "What does NASA stand for ?", "output": "ABBR"},
             {"input": "What does the abbreviation UNESCO mean ?", "output": "ABBR"}),
    "snips": ({"input": "put this song on my workout mix", "output": "AddToPlaylist"},
              {"input": "add the new Adele track to my chill evening list", "output": "AddToPlaylist"}),
    "gsm8k": ({"input": "Tom has 3 boxes with 4 pens each. He gives away 5 pens. How many pens are left?",
               "output": "Tom has 3 * 4 = 12 pens. After giving away 5 he has 12 - 5 = 7 pens.\n#### 7"},
              {"input": "A baker makes 5 trays of 6 rolls and sells 17 rolls. How many rolls are left?",
               "output": "The baker makes 5 * 6 = 30 rolls. After selling 17, 30 - 17 = 13 rolls are left.\n#### 13"}),
}


def worked_example_inputs(task: Task) -> list[str]:
    """Inputs shown to the teacher as the worked example: a copy of one is a duplicate, not a new example."""
    return [ex["input"] for ex in _WORKED.get(task.name, ())]


def _keys(task: Task) -> tuple[str, str]:
    return ("Question", "Answer") if task.numeric else ("Input", "Output")


def _show(task: Task, example: Mapping) -> str:
    return task.verbalize(example["output"]) if task.is_classification else example["output"]


def system_prompt(task: Task) -> str:
    in_key, out_key = _keys(task)
    if task.is_classification:
        output_rule = f"- Each output must be exactly one of: {', '.join(task.words)}."
    elif task.numeric:
        output_rule = "- Each answer must show the work step by step and end with a line '#### <number>'."
    else:
        output_rule = "- Each output must answer its input in the same style as the example."
    description = _DESCRIPTIONS.get(task.name, task.instruction or f"the task '{task.name}'.")
    return _RULES.format(description=description, output_rule=output_rule, in_key=in_key, out_key=out_key)


def _user_message(task: Task, wrong: Mapping, student_answer: str, k: int, same_label: bool) -> str:
    in_key, out_key = _keys(task)
    ask = f"Write {k} new example(s)"
    if same_label and task.is_classification:
        ask += f" whose correct {out_key.lower()} is also {_show(task, wrong)}"
    return (f"Example the student got wrong:\n{in_key}: {wrong['input']}\nCorrect {out_key.lower()}: "
            f"{_show(task, wrong)}\nStudent's {out_key.lower()}: {student_answer.strip() or '(empty)'}\n\n{ask}.")


def build_messages(task: Task, wrong: Mapping, student_answer: str, k: int,
                   same_label: bool = False) -> tuple[str, list[dict]]:
    """(system prompt, chat turns): the rules, one worked example exchange, then the wrong example.

    same_label (classification): ask for new examples of the wrong example's own class, the class
    the student failed on (the filter then keeps only those; see AugmentationFilter).
    """
    system = system_prompt(task).replace("{k}", str(k))
    turns = []
    worked = _WORKED.get(task.name)
    if worked:
        shown, new = worked
        in_key, out_key = _keys(task)
        turns.append({"role": "user", "content": _user_message(task, shown, "(a wrong answer)", 1, same_label)})
        turns.append({"role": "assistant", "content": f"1. {in_key}: {new['input']}\n   {out_key}: {_show(task, new)}"})
    turns.append({"role": "user", "content": _user_message(task, wrong, student_answer, k, same_label)})
    return system, turns


_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*])\s+", re.M)


def parse_examples(text: str, task: Task) -> list[dict]:
    """New examples from a teacher reply: numbered items with Input/Output (Question/Answer) fields.

    Returns dicts with `input` and `raw_output` (the text after the output key, unvalidated).
    Items missing a field are returned with an empty string so the filters can count them.
    """
    if not text or not text.strip():
        return []
    in_key, out_key = _keys(task)
    starts = [m.start() for m in _ITEM.finditer(text)]
    blocks = [text[s:e] for s, e in zip(starts, starts[1:] + [len(text)])] if starts else [text]
    # "Input: x", "1. Input: x", "**Input:** x", "- **Output**: y"
    field = re.compile(rf"(?is)^\s*(?:\d+[.)]|[-*])?\s*\**({in_key}|{out_key}|input|output|question|answer)\**\s*:"
                       rf"\s*\**\s*")
    out = []
    for block in blocks:
        parts: dict = {}
        current: Optional[str] = None
        for line in block.splitlines():
            m = field.match(line)
            if m:
                key = m.group(1).lower()
                current = "input" if key in ("input", "question") else "output"
                parts[current] = line[m.end():].strip()
            elif current:
                parts[current] += "\n" + line.strip()
        if parts:
            out.append({"input": parts.get("input", "").strip(), "raw_output": parts.get("output", "").strip()})
    return out
