"""What the teacher is asked: prompts per task and mode, the JSON schemas of structured replies, the judge's
prompt.

Two ways to ask (`teacher.mode`):
  example            the rules, one worked example, then the wrong seed example with its gold output and the
                     student's answer; the teacher writes whole examples (input and output). Free-form tasks
                     (GSM8K) need it.
  label_conditioned  classification only: the failed seed example and its gold class, and a request for new
                     inputs of that class; the class is attached by construction, so no new example can carry
                     an invalid or a wrong label. Short and concrete, for weak teachers.
A reply is read back by teacher/replies.py: as JSON when the teacher was given a schema (structured outputs),
as a numbered list otherwise. What the teacher knows of a task (its description, what an input is called, what
each class means, one worked exchange) is part of the task (data/tasks.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from llm2llm_jax.data.tasks import Task

MODES = ("example", "label_conditioned")

_RULES = """You write new training examples for a student model that is learning a task:
{description}
You are shown one example the student got wrong, with the correct output and the student's output.
Write {{k}} NEW example(s) of the same kind and difficulty that teach what the student missed.
Rules:
- Each new example must be different from the one shown (new wording, new details), not a copy.
- Each output must be correct for its input.
{output_rule}
{reply_rule}"""

_NUMBERED_PAIRS = """- Reply with only a numbered list, each item exactly in this format:
1. {in_key}: <text>
   {out_key}: <output>"""


def resolve_mode(mode: str, task: Task) -> str:
    """teacher.mode with 'auto' made concrete: label_conditioned for classification tasks, example
    otherwise."""
    if mode == "auto":
        return "label_conditioned" if task.is_classification else "example"
    return mode


def worked_example_inputs(task: Task) -> list[str]:
    """Inputs shown to the teacher as the worked example: a copy of one is a duplicate, not a new example."""
    return [ex["input"] for ex in task.worked]


def field_keys(task: Task) -> tuple[str, str]:
    return ("Question", "Answer") if task.numeric else ("Input", "Output")


def _show(task: Task, example: Mapping) -> str:
    return task.verbalize(example["output"]) if task.is_classification else example["output"]


def _description(task: Task) -> str:
    return task.description or task.instruction or f"the task '{task.name}'."


def _json_rule(fields: str) -> str:
    return f'- Reply with only JSON: {{"examples": [{fields}, ...]}}'


# ---------------------------------------------------------------------------- example mode
def system_prompt(task: Task, structured: bool = False) -> str:
    in_key, out_key = field_keys(task)
    if task.is_classification:
        output_rule = f"- Each output must be exactly one of: {', '.join(task.words)}."
    elif task.numeric:
        output_rule = "- Each answer must show the work step by step and end with a line '#### <number>'."
    else:
        output_rule = "- Each output must answer its input in the same style as the example."
    reply_rule = (
        _json_rule('{"input": <text>, "output": <output>}')
        if structured
        else _NUMBERED_PAIRS.format(in_key=in_key, out_key=out_key)
    )
    return _RULES.format(description=_description(task), output_rule=output_rule, reply_rule=reply_rule)


def _user_message(task: Task, wrong: Mapping, student_answer: str, k: int, same_label: bool) -> str:
    in_key, out_key = field_keys(task)
    ask = f"Write {k} new example(s)"
    if same_label and task.is_classification:
        ask += f" whose correct {out_key.lower()} is also {_show(task, wrong)}"
    return (
        f"Example the student got wrong:\n{in_key}: {wrong['input']}\nCorrect {out_key.lower()}: "
        f"{_show(task, wrong)}\nStudent's {out_key.lower()}: {student_answer.strip() or '(empty)'}\n\n{ask}."
    )


def _worked_reply(task: Task, new: Mapping, structured: bool, with_output: bool = True) -> str:
    if structured:
        item = {"input": new["input"], "output": _show(task, new)} if with_output else {"input": new["input"]}
        return json.dumps({"examples": [item]}, ensure_ascii=False)
    if not with_output:
        return f"1. {new['input']}"
    in_key, out_key = field_keys(task)
    return f"1. {in_key}: {new['input']}\n   {out_key}: {_show(task, new)}"


def build_messages(
    task: Task,
    wrong: Mapping,
    student_answer: str,
    k: int,
    same_label: bool = False,
    mode: str = "example",
    structured: bool = False,
) -> tuple[str, list[dict]]:
    """(system prompt, chat turns) asking for k new examples grown from `wrong`.

    mode 'example': the rules, one worked example exchange, then the wrong example (with same_label, the
    request asks for its own class: the class the student failed on). mode 'label_conditioned': see
    `label_conditioned_messages`. structured: the reply format asked for is the JSON of `reply_schema`.
    """
    if mode == "label_conditioned":
        return label_conditioned_messages(task, wrong, k, structured)
    system = system_prompt(task, structured).replace("{k}", str(k))
    turns = []
    worked = task.worked
    if worked:
        shown, new = worked
        turns.append(
            {"role": "user", "content": _user_message(task, shown, "(a wrong answer)", 1, same_label)}
        )
        turns.append({"role": "assistant", "content": _worked_reply(task, new, structured)})
    turns.append({"role": "user", "content": _user_message(task, wrong, student_answer, k, same_label)})
    return system, turns


# ---------------------------------------------------------------------------- label-conditioned mode
def _noun(task: Task, plural: bool) -> str:
    return task.noun[1 if plural else 0]


def _class_line(task: Task, label: str) -> str:
    meaning = task.class_meanings.get(label)
    word = task.verbalize(label)
    return f"Class: {word}" + (f". A {_noun(task, False)} of this class {meaning}." if meaning else "")


def _conditioned_request(task: Task, parent: Mapping, k: int) -> str:
    noun = _noun(task, k != 1)
    return (
        f"{_class_line(task, parent['output'])}\n{_noun(task, False).capitalize()}: {parent['input']}\n\n"
        f"Write {k} new {noun} of this class."
    )


def label_conditioned_messages(
    task: Task, parent: Mapping, k: int, structured: bool = False
) -> tuple[str, list]:
    """(system prompt, chat turns): the task, the parent's class with what it means, the parent's input, and a
    request for k new inputs of that class; one worked exchange first where the task has one."""
    if not task.is_classification:
        raise ValueError(f"label-conditioned prompts need a classification task; {task.name} has no labels")
    noun, nouns = _noun(task, False), _noun(task, True)
    reply_rule = (
        _json_rule('{"input": <text>}')
        if structured
        else f"Reply with only a numbered list of the new {nouns}, one per line."
    )
    system = (
        f"You write new {nouns} for the training set of a classifier. The task: {_description(task)}\n"
        f"You are shown one {noun} and its class. Write new {nouns} of the same class: different wording "
        f"and different details, never a copy.\n{reply_rule}"
    )
    turns = []
    worked = task.worked
    if worked:
        shown, new = worked
        turns.append({"role": "user", "content": _conditioned_request(task, shown, 1)})
        turns.append(
            {"role": "assistant", "content": _worked_reply(task, new, structured, with_output=False)}
        )
    turns.append({"role": "user", "content": _conditioned_request(task, parent, k)})
    return system, turns


# ---------------------------------------------------------------------------- structured replies
def reply_schema(task: Task, mode: str) -> dict:
    """The JSON schema of a structured reply: {"examples": [{"input": ...[, "output": ...]}]}, the output an
    enum of the task's verbalizers for classification (OpenAI strict mode's subset, which Gemini also
    reads)."""
    item = {"input": {"type": "string"}}
    if mode == "example":
        item["output"] = (
            {"type": "string", "enum": list(task.words)} if task.is_classification else {"type": "string"}
        )
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["examples"],
        "properties": {
            "examples": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": sorted(item),
                    "properties": item,
                },
            }
        },
    }


# ---------------------------------------------------------------------------- verification (the judge)
def judge_messages(task: Task, candidate_input: str, structured: bool = False) -> tuple[str, list[dict]]:
    """(system prompt, turns) asking a judge to answer a new example's input on its own: the class for a
    classification task (without the class it was made for), a worked solution for a numeric one."""
    in_key, _ = field_keys(task)
    if task.is_classification:
        reply = 'Reply with only JSON: {"label": <class>}.' if structured else "Reply with only the class."
        system = (
            f"You label inputs for this task: {_description(task)}\nThe classes: {', '.join(task.words)}.\n"
            f"{reply}"
        )
        return system, [{"role": "user", "content": f"{in_key}: {candidate_input}\n{task.cue}"}]
    reply = (
        'Reply with only JSON: {"solution": <the work>, "final_answer": <number>}.'
        if structured
        else "End with a line '#### <number>'."
    )
    system = f"Solve the problem step by step. {reply}"
    return system, [{"role": "user", "content": f"{in_key}: {candidate_input}"}]


def judge_schema(task: Task) -> dict:
    if task.is_classification:
        props = {"label": {"type": "string", "enum": list(task.words)}}
    else:
        props = {"solution": {"type": "string"}, "final_answer": {"type": "string"}}
    return {"type": "object", "additionalProperties": False, "required": sorted(props), "properties": props}
