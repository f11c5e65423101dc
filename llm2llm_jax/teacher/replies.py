"""Reading the teacher's replies: new examples (or inputs) from a numbered list or the JSON of a structured
reply, and the judge's verdict. Either reader accepts the other's format, since a teacher may ignore what it
was asked for.
"""

from __future__ import annotations

import json
import re

from llm2llm_jax.data.tasks import Task
from llm2llm_jax.teacher.prompts import field_keys


def _json_value(text: str):
    """The JSON value in a reply (a ```json fence or surrounding chatter allowed), or None."""
    body = re.sub(r"^\s*```(?:json)?\s*|\s*```\s*$", "", text.strip())
    # The outer value first: trying '{' before '[' read a bare list of objects as its first object.
    for start in sorted(i for i in (body.find("{"), body.find("[")) if i >= 0):
        try:
            return json.JSONDecoder().raw_decode(body[start:])[0]
        except (ValueError, RecursionError):  # RecursionError: a runaway '[[[[...' deeper than the stack
            continue
    return None


def _from_json(value, task: Task) -> list[dict] | None:
    items = value.get("examples") if isinstance(value, dict) else value
    if not isinstance(items, list):
        return None
    in_key, out_key = (k.lower() for k in field_keys(task))
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
    in_key, out_key = field_keys(task)
    starts = [m.start() for m in _ITEM.finditer(text)]
    blocks = [text[s:e] for s, e in zip(starts, starts[1:] + [len(text)])] if starts else [text]
    # "Input: x", "1. Input: x", "**Input:** x", "- **Output**: y"
    field = re.compile(
        rf"(?is)^\s*(?:\d+[.)]|[-*])?\s*\**({in_key}|{out_key}|input|output|question|answer)\**\s*:"
        rf"\s*\**\s*"
    )
    out = []
    for block in blocks:
        parts: dict = {}
        current: str | None = None
        for line in block.splitlines():
            m = field.match(line)
            if m:
                key = m.group(1).lower()
                current = "input" if key in ("input", "question") else "output"
                parts[current] = line[m.end() :].strip()
            elif current:
                parts[current] += "\n" + line.strip()
        if parts:
            out.append(
                {"input": parts.get("input", "").strip(), "raw_output": parts.get("output", "").strip()}
            )
    return out


def _clean_input(line: str, task: Task) -> str:
    """One listed input without its list marker, a field name the teacher added, markdown or quotes."""
    line = _ITEM.sub("", line, count=1).strip()
    noun = re.escape(task.noun[0])
    line = re.sub(rf"(?i)^\**(?:input|question|{noun})\**\s*:\s*\**\s*", "", line)
    line = line.strip().strip("*").strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'":
        line = line[1:-1].strip()
    return line


_FIELD_LINE = re.compile(r"^\s*\**[A-Z][A-Za-z]*(?: [A-Za-z]+)?\**\s*:")  # "Question:", "Class:", "Note:" ...
# A weak teacher's wrapping around a bare reply: a lead-in line ("Here is the output:", "Sure! Here are two
# new requests"), a code fence, or a placeholder where an item should be ("[1]", "...", "<question>").
_LEAD_IN = re.compile(r"(?i)^\s*(?:here (?:is|are)\b|sure\b|certainly\b|of course\b).*$|^.*:\s*$")
_FENCE = re.compile(r"^\s*```")
_PLACEHOLDER = re.compile(r"\[[^\]]*\]|\.{2,}|…|<[^>]*>|\d+")


def _bare_items(lines: list[str], task: Task) -> list[dict]:
    """Inputs from a reply with no numbered list: its one line (unless it ends in ':', a lead-in alone); or,
    past code fences and lead-in lines, its one remaining line, or one item per line when every remaining
    line names a field ("Output: ...", "Question: ..."). Placeholders are not inputs; anything else is
    ambiguous and gives nothing."""
    filled = [line for line in lines if line.strip()]
    body = filled
    if len(filled) == 1 and filled[0].rstrip().endswith(":"):
        return []  # a lead-in with nothing after it ("The output of the class is:"), not an input
    if len(filled) > 1:
        body = [line for line in filled if not _FENCE.match(line) and not _LEAD_IN.match(line)]
    named = re.compile(rf"(?i)^\s*\**(?:output|input|question|{re.escape(task.noun[0])})\**\s*:")
    if len(body) > 1 and not all(named.match(line) for line in body):
        return []
    items = [_clean_input(re.sub(r"(?i)^\s*\**output\**\s*:", "", line), task) for line in body]
    return [{"input": item, "raw_output": ""} for item in items if item and not _PLACEHOLDER.fullmatch(item)]


def parse_inputs(text: str, task: Task, multiline: bool = False) -> list[dict]:
    """New inputs from a label-conditioned reply: a numbered (or bulleted) list, the JSON of `reply_schema`,
    or, from a teacher that writes no list, what `_bare_items` finds. Lines before the first item (chatter)
    are skipped. An item is its line; with `multiline` (inputs that span lines) the lines right below it
    continue it, unless one is blank or starts a field of its own ("Question: ...", "Note: "): weak teachers
    follow an item with a rewording or a remark. Returns dicts with `input` (and `raw_output` empty)."""
    if not text or not text.strip():
        return []
    value = _json_value(text) if text.lstrip()[:1] in "{[`" else None
    from_json = _from_json(value, task) if value is not None else None
    if from_json is not None:
        return [{"input": c["input"], "raw_output": ""} for c in from_json]
    lines = text.splitlines()
    if not any(_ITEM.match(line) for line in lines):  # a weak teacher's bare reply
        return _bare_items(lines, task)
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


def parse_judgement(text: str, task: Task) -> str | None:
    """The judge's answer as a gold-comparable string (a label, or a canonical number), or None."""
    value = _json_value(text) if text and text.lstrip()[:1] in "{`" else None
    if isinstance(value, dict):
        if task.is_classification and "label" in value:
            return task.parse(str(value["label"]))
        if not task.is_classification and "final_answer" in value:
            return task.parse(f"#### {value['final_answer']}")
    return task.parse(text or "")
