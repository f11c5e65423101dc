"""Teacher prompts per task and mode, the JSON schemas of structured replies, and reading replies back.

Two ways to ask (`teacher.mode`):
  example            the rules, one worked example, then the wrong seed example with its gold output and the
                     student's answer; the teacher writes whole examples (input and output). Free-form tasks
                     (GSM8K) need it.
  label_conditioned  classification only: the failed seed example and its gold class, and a request for new
                     inputs of that class; the class is attached by construction, so no new example can carry an
                     invalid or a wrong label. Short and concrete, for weak teachers.
A reply is read as JSON when the teacher was given a schema (structured outputs) and as a numbered list
otherwise; either reader accepts the other's format, since a teacher may ignore what it was asked for.
"""

from __future__ import annotations

import json
import re
from typing import Mapping, Optional

from llm2llm_jax.tasks import Task

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

_DESCRIPTIONS = {
    "sst2": "classify the sentiment of a movie review as positive or negative.",
    "trec": "classify what a question asks for: abbreviation, description, entity, human, location or number.",
    "snips": "classify the intent of a voice-assistant request.",
    "gsm8k": "solve grade-school math word problems step by step.",
    "casehold": "choose which of five holdings (A-E) a legal citing text refers to.",
    "rotten_tomatoes": "classify the sentiment of a movie review sentence as positive or negative.",
    "newsgroups": ("classify the topic of a newsgroup post: computer graphics, for sale, cars, motorcycles, baseball, "
                   "cryptography, medicine, space, christianity or guns."),
}

# What one input of the task is called in a label-conditioned request.
_NOUNS = {"sst2": ("movie review sentence", "movie review sentences"), "trec": ("question", "questions"),
          "snips": ("request", "requests"), "casehold": ("citing text", "citing texts"),
          "rotten_tomatoes": ("movie review sentence", "movie review sentences"),
          "newsgroups": ("newsgroup post", "newsgroup posts")}

# What each class means, in a few words: a weak teacher writes on-class inputs when it is told what the class is.
_CLASS_MEANINGS = {
    "trec": {"ABBR": "asks what an abbreviation stands for or what something is short for",
             "DESC": "asks for a definition, a description, a reason or a manner (what is, why, how)",
             "ENTY": "asks for a thing: an animal, a food, a product, a color, a sport, a word, an event and so on",
             "HUM": "asks for a person, a group of people or an organization (who)",
             "LOC": "asks for a place: a city, a country, a river, a mountain, an address (where)",
             "NUM": "asks for a number: a count, a date, an age, a price, a distance, a speed (how many, when)"},
    "sst2": {"negative": "says something bad about the movie", "positive": "says something good about the movie"},
    "rotten_tomatoes": {"negative": "says something bad about the movie",
                        "positive": "says something good about the movie"},
    "newsgroups": {"comp.graphics": "is about computer graphics: images, file formats, rendering, 3D software",
                   "misc.forsale": "offers something for sale or asks to buy something",
                   "rec.autos": "is about cars: models, engines, driving, repairs",
                   "rec.motorcycles": "is about motorcycles: bikes, riding, gear",
                   "rec.sport.baseball": "is about baseball: teams, players, games, statistics",
                   "sci.crypt": "is about cryptography: encryption, keys, privacy",
                   "sci.med": "is about medicine: illnesses, treatments, doctors, drugs",
                   "sci.space": "is about space: rockets, orbits, NASA, planets",
                   "soc.religion.christian": "is about christianity: the bible, faith, the church",
                   "talk.politics.guns": "is about guns: gun laws, firearms, the right to bear arms"},
}

_WORKED = {
    "sst2": ({"input": "the plot is thin but the performances are wonderful", "output": "positive"},
             {"input": "despite a clumsy opening, the film's warmth wins you over", "output": "positive"}),
    "trec": ({"input": "What does NASA stand for ?", "output": "ABBR"},
             {"input": "What does the abbreviation UNESCO mean ?", "output": "ABBR"}),
    "snips": ({"input": "put this song on my workout mix", "output": "AddToPlaylist"},
              {"input": "add the new Adele track to my chill evening list", "output": "AddToPlaylist"}),
    "rotten_tomatoes": ({"input": "A gripping, beautifully acted drama that earns every one of its tears.",
                         "output": "positive"},
                        {"input": "The cast is charming and the jokes land far more often than they miss.",
                         "output": "positive"}),
    # the corpus's posts are lower-cased, without punctuation, the subject line first
    "newsgroups": ({"input": "shuttle launch date does anyone know when the next shuttle launch is planned i heard "
                             "the mission was delayed again because of a problem with the main engines",
                    "output": "sci.space"},
                   {"input": "mars probe images the latest pictures from the probe show the landing site in more "
                             "detail and the team expects the rover to leave the lander next week",
                    "output": "sci.space"}),
    "gsm8k": ({"input": "Tom has 3 boxes with 4 pens each. He gives away 5 pens. How many pens are left?",
               "output": "Tom has 3 * 4 = 12 pens. After giving away 5 he has 12 - 5 = 7 pens.\n#### 7"},
              {"input": "A baker makes 5 trays of 6 rolls and sells 17 rolls. How many rolls are left?",
               "output": "The baker makes 5 * 6 = 30 rolls. After selling 17, 30 - 17 = 13 rolls are left.\n#### 13"}),
}


def resolve_mode(mode: str, task: Task) -> str:
    """teacher.mode with 'auto' made concrete: label_conditioned for classification tasks, example otherwise."""
    if mode == "auto":
        return "label_conditioned" if task.is_classification else "example"
    return mode


def worked_example_inputs(task: Task) -> list[str]:
    """Inputs shown to the teacher as the worked example: a copy of one is a duplicate, not a new example."""
    return [ex["input"] for ex in _WORKED.get(task.name, ())]


def _keys(task: Task) -> tuple[str, str]:
    return ("Question", "Answer") if task.numeric else ("Input", "Output")


def _show(task: Task, example: Mapping) -> str:
    return task.verbalize(example["output"]) if task.is_classification else example["output"]


def _description(task: Task) -> str:
    return _DESCRIPTIONS.get(task.name, task.instruction or f"the task '{task.name}'.")


def _json_rule(fields: str) -> str:
    return f'- Reply with only JSON: {{"examples": [{fields}, ...]}}'


# ---------------------------------------------------------------------------- example mode
def system_prompt(task: Task, structured: bool = False) -> str:
    in_key, out_key = _keys(task)
    if task.is_classification:
        output_rule = f"- Each output must be exactly one of: {', '.join(task.words)}."
    elif task.numeric:
        output_rule = "- Each answer must show the work step by step and end with a line '#### <number>'."
    else:
        output_rule = "- Each output must answer its input in the same style as the example."
    reply_rule = (_json_rule('{"input": <text>, "output": <output>}') if structured
                  else _NUMBERED_PAIRS.format(in_key=in_key, out_key=out_key))
    return _RULES.format(description=_description(task), output_rule=output_rule, reply_rule=reply_rule)


def _user_message(task: Task, wrong: Mapping, student_answer: str, k: int, same_label: bool) -> str:
    in_key, out_key = _keys(task)
    ask = f"Write {k} new example(s)"
    if same_label and task.is_classification:
        ask += f" whose correct {out_key.lower()} is also {_show(task, wrong)}"
    return (f"Example the student got wrong:\n{in_key}: {wrong['input']}\nCorrect {out_key.lower()}: "
            f"{_show(task, wrong)}\nStudent's {out_key.lower()}: {student_answer.strip() or '(empty)'}\n\n{ask}.")


def _worked_reply(task: Task, new: Mapping, structured: bool, with_output: bool = True) -> str:
    if structured:
        item = {"input": new["input"], "output": _show(task, new)} if with_output else {"input": new["input"]}
        return json.dumps({"examples": [item]}, ensure_ascii=False)
    if not with_output:
        return f"1. {new['input']}"
    in_key, out_key = _keys(task)
    return f"1. {in_key}: {new['input']}\n   {out_key}: {_show(task, new)}"


def build_messages(task: Task, wrong: Mapping, student_answer: str, k: int, same_label: bool = False,
                   mode: str = "example", structured: bool = False) -> tuple[str, list[dict]]:
    """(system prompt, chat turns) asking for k new examples grown from `wrong`.

    mode 'example': the rules, one worked example exchange, then the wrong example (with same_label, the
    request asks for its own class: the class the student failed on). mode 'label_conditioned': see
    `label_conditioned_messages`. structured: the reply format asked for is the JSON of `reply_schema`.
    """
    if mode == "label_conditioned":
        return label_conditioned_messages(task, wrong, k, structured)
    system = system_prompt(task, structured).replace("{k}", str(k))
    turns = []
    worked = _WORKED.get(task.name)
    if worked:
        shown, new = worked
        turns.append({"role": "user", "content": _user_message(task, shown, "(a wrong answer)", 1, same_label)})
        turns.append({"role": "assistant", "content": _worked_reply(task, new, structured)})
    turns.append({"role": "user", "content": _user_message(task, wrong, student_answer, k, same_label)})
    return system, turns


# ---------------------------------------------------------------------------- label-conditioned mode
def _noun(task: Task, plural: bool) -> str:
    return _NOUNS.get(task.name, ("input", "inputs"))[1 if plural else 0]


def _class_line(task: Task, label: str) -> str:
    meaning = _CLASS_MEANINGS.get(task.name, {}).get(label)
    word = task.verbalize(label)
    return f"Class: {word}" + (f". A {_noun(task, False)} of this class {meaning}." if meaning else "")


def _conditioned_request(task: Task, parent: Mapping, k: int) -> str:
    noun = _noun(task, k != 1)
    return (f"{_class_line(task, parent['output'])}\n{_noun(task, False).capitalize()}: {parent['input']}\n\n"
            f"Write {k} new {noun} of this class.")


def label_conditioned_messages(task: Task, parent: Mapping, k: int, structured: bool = False) -> tuple[str, list]:
    """(system prompt, chat turns): the task, the parent's class with what it means, the parent's input, and a
    request for k new inputs of that class; one worked exchange first where the task has one."""
    if not task.is_classification:
        raise ValueError(f"label-conditioned prompts need a classification task; {task.name} has no labels")
    noun, nouns = _noun(task, False), _noun(task, True)
    reply_rule = (_json_rule('{"input": <text>}') if structured
                  else f"Reply with only a numbered list of the new {nouns}, one per line.")
    system = (f"You write new {nouns} for the training set of a classifier. The task: {_description(task)}\n"
              f"You are shown one {noun} and its class. Write new {nouns} of the same class: different wording "
              f"and different details, never a copy.\n{reply_rule}")
    turns = []
    worked = _WORKED.get(task.name)
    if worked:
        shown, new = worked
        turns.append({"role": "user", "content": _conditioned_request(task, shown, 1)})
        turns.append({"role": "assistant", "content": _worked_reply(task, new, structured, with_output=False)})
    turns.append({"role": "user", "content": _conditioned_request(task, parent, k)})
    return system, turns


# ---------------------------------------------------------------------------- structured replies
def reply_schema(task: Task, mode: str) -> dict:
    """The JSON schema of a structured reply: {"examples": [{"input": ...[, "output": ...]}]}, the output an
    enum of the task's verbalizers for classification (OpenAI strict mode's subset, which Gemini also reads)."""
    item = {"input": {"type": "string"}}
    if mode == "example":
        item["output"] = ({"type": "string", "enum": list(task.words)} if task.is_classification
                          else {"type": "string"})
    return {"type": "object", "additionalProperties": False, "required": ["examples"],
            "properties": {"examples": {"type": "array", "items": {
                "type": "object", "additionalProperties": False, "required": sorted(item), "properties": item}}}}


def _json_value(text: str):
    """The JSON value in a reply (a ```json fence or surrounding chatter allowed), or None."""
    body = re.sub(r"^\s*```(?:json)?\s*|\s*```\s*$", "", text.strip())
    for start_char in "{[":
        start = body.find(start_char)
        if start < 0:
            continue
        try:
            return json.JSONDecoder().raw_decode(body[start:])[0]
        except ValueError:
            continue
    return None


def _from_json(value, task: Task) -> Optional[list[dict]]:
    items = value.get("examples") if isinstance(value, dict) else value
    if not isinstance(items, list):
        return None
    in_key, out_key = (k.lower() for k in _keys(task))
    out = []
    for item in items:
        if isinstance(item, str):
            out.append({"input": item.strip(), "raw_output": ""})
        elif isinstance(item, dict):
            text = item.get("input", item.get(in_key, ""))
            raw = item.get("output", item.get(out_key, ""))
            out.append({"input": str(text).strip(), "raw_output": str(raw).strip()})
    return out


# ---------------------------------------------------------------------------- reading replies
_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*])\s+", re.M)


def parse_examples(text: str, task: Task) -> list[dict]:
    """New examples from an example-mode reply: numbered items with Input/Output (Question/Answer) fields, or
    the JSON of `reply_schema`.

    Returns dicts with `input` and `raw_output` (the text after the output key, unvalidated).
    Items missing a field are returned with an empty string so the filters can count them.
    """
    if not text or not text.strip():
        return []
    value = _json_value(text) if text.lstrip()[:1] in "{[`" else None
    from_json = _from_json(value, task) if value is not None else None
    if from_json is not None:
        return from_json
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


def _clean_input(line: str, task: Task) -> str:
    """One listed input without its list marker, a field name the teacher added, markdown or quotes."""
    line = _ITEM.sub("", line, count=1).strip()
    noun = re.escape(_noun(task, False))
    line = re.sub(rf"(?i)^\**(?:input|question|{noun})\**\s*:\s*\**\s*", "", line)
    line = line.strip().strip("*").strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'":
        line = line[1:-1].strip()
    return line


_FIELD_LINE = re.compile(r"^\s*\**[A-Z][A-Za-z]*(?: [A-Za-z]+)?\**\s*:")  # "Question:", "Class:", "Note:" ...


def parse_inputs(text: str, task: Task, multiline: bool = False) -> list[dict]:
    """New inputs from a label-conditioned reply: a numbered (or bulleted) list, the JSON of `reply_schema`, or,
    from a teacher that writes one bare line, that line. Lines before the first item (chatter) are skipped. An
    item is its line; with `multiline` (inputs that span lines) the lines right below it continue it, unless one
    is blank or starts a field of its own ("Question: ...", "Note: "): weak teachers follow an item with a
    rewording or a remark. Returns dicts with `input` (and `raw_output` empty)."""
    if not text or not text.strip():
        return []
    value = _json_value(text) if text.lstrip()[:1] in "{[`" else None
    from_json = _from_json(value, task) if value is not None else None
    if from_json is not None:
        return [{"input": c["input"], "raw_output": ""} for c in from_json]
    lines = text.splitlines()
    if not any(_ITEM.match(line) for line in lines):  # a weak teacher's single bare line; more lines are chatter
        filled = [line for line in lines if line.strip()]
        return [{"input": _clean_input(filled[0], task), "raw_output": ""}] if len(filled) == 1 else []
    items, current = [], None
    for line in lines:
        if _ITEM.match(line):
            current = [_clean_input(line, task)]
            items.append(current)
        elif multiline and current is not None and line.strip() and not _FIELD_LINE.match(line):
            current.append(line.strip())
        else:
            current = None
    return [{"input": " ".join(parts).strip(), "raw_output": ""} for parts in items]


def parse_reply(text: str, task: Task, mode: str, multiline: bool = False) -> list[dict]:
    """Candidates from one reply in the given mode (see `parse_examples` and `parse_inputs`)."""
    return parse_inputs(text, task, multiline) if mode == "label_conditioned" else parse_examples(text, task)


# ---------------------------------------------------------------------------- verification (the judge)
def judge_messages(task: Task, candidate_input: str, structured: bool = False) -> tuple[str, list[dict]]:
    """(system prompt, turns) asking a judge to answer a new example's input on its own: the class for a
    classification task (without the class it was made for), a worked solution for a numeric one."""
    in_key, _ = _keys(task)
    if task.is_classification:
        reply = ('Reply with only JSON: {"label": <class>}.' if structured
                 else "Reply with only the class.")
        system = (f"You label inputs for this task: {_description(task)}\nThe classes: {', '.join(task.words)}.\n"
                  f"{reply}")
        return system, [{"role": "user", "content": f"{in_key}: {candidate_input}\n{task.cue}"}]
    reply = ('Reply with only JSON: {"solution": <the work>, "final_answer": <number>}.' if structured
             else "End with a line '#### <number>'.")
    system = f"Solve the problem step by step. {reply}"
    return system, [{"role": "user", "content": f"{in_key}: {candidate_input}"}]


def judge_schema(task: Task) -> dict:
    if task.is_classification:
        props = {"label": {"type": "string", "enum": list(task.words)}}
    else:
        props = {"solution": {"type": "string"}, "final_answer": {"type": "string"}}
    return {"type": "object", "additionalProperties": False, "required": sorted(props), "properties": props}


def parse_judgement(text: str, task: Task) -> Optional[str]:
    """The judge's answer as a gold-comparable string (a label, or a canonical number), or None."""
    value = _json_value(text) if text and text.lstrip()[:1] in "{`" else None
    if isinstance(value, dict):
        if task.is_classification and "label" in value:
            return task.parse(str(value["label"]))
        if not task.is_classification and "final_answer" in value:
            return task.parse(f"#### {value['final_answer']}")
    return task.parse(text or "")
