"""Property-based tests (hypothesis) of the text parsers: labels and final answers (data/tasks.py), the
teacher's replies (teacher/replies.py) and the JSONL/CSV/TSV readers (data/tables.py).

Three kinds of property. Arbitrary text (any unicode, control characters, very long runs of one piece)
never crashes a parser; a reader may refuse a file only with the project's one-line `UserError`. What the
prompts ask a student or a teacher to write reads back as what was written: a label's word with the
decoration a model adds, a number written as the final answer `#### N`, the numbered and JSON replies of
teacher/prompts.py, rows written by the csv and json modules. And a word that merely begins with a label's
word is not that label. Example counts are kept small (the file runs in seconds) and no example database
is kept.
"""

import csv
import json
import re
import string
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from llm2llm_jax.common.errors import UserError
from llm2llm_jax.data.tables import DataError, check_labels, read_table
from llm2llm_jax.data.tasks import TASKS, custom_task, format_number, parse_number
from llm2llm_jax.teacher.prompts import field_keys
from llm2llm_jax.teacher.replies import parse_examples, parse_inputs, parse_judgement, parse_reply

# The same examples on every run (derandomize), so a CI result is reproducible; to search further, raise
# max_examples locally or set derandomize=False.
SETTINGS = dict(deadline=None, database=None, derandomize=True)

NLI = custom_task(
    {
        "name": "nli",
        "cue": "Answer:",
        "labels": ["entailment", "not_entailment"],
        "verbalizers": ["entailment", "not entailment"],
    }
)
FREE_FORM = custom_task({"name": "free", "cue": "Answer:"})
REGEX_ANSWER = custom_task({"name": "regex", "cue": "Answer:", "answer_regex": r"answer is (\S+)"})
ALL_TASKS = [*TASKS.values(), NLI, FREE_FORM, REGEX_ANSWER]
CLASSIFICATION = [t for t in ALL_TASKS if t.is_classification]
GSM8K = TASKS["gsm8k"]


def _tokens(text: str) -> set:
    """The words of a text as the label parser compares them: lower case, split at anything not a letter
    or digit (of any script)."""
    return {w for w in re.split(r"[\W_]+", text.lower()) if w}


def _task_tokens(task) -> set:
    return set().union(*(_tokens(w) for w in task.words))


def _one_line(error: Exception) -> bool:
    return len(str(error).splitlines()) == 1


# ---------------------------------------------------------------------------- text strategies
# Pieces of the formats the parsers read, so that random text reaches past their first checks.
_FRAGMENTS = [
    *("1. ", "2) ", "- ", "* ", "\n", "\r\n", "   ", "\t", ": ", ", ", '"', "'", "**", "```json\n", "```"),
    *("Input:", "Output:", "Question:", "Answer:", "Class:", "Note:", "Here are two:", "Sure!", "...", "[1]"),
    *("{", "}", "[", "]", '"examples"', '"input"', '"output"', '"label"', '"final_answer"', "null", "true"),
    *("####", "$", "-", ".", ",", "5", "1,234", ".5", "-3.0"),
    *("human", "location", "positive", "negative", "not entailment", "play music", "humane", "C"),
]
_REPLY_LIKE = st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=4), max_size=40).map("".join)
# Very long lines: a degenerate model repeating one token, e.g. thousands of digits or opening brackets.
_RUN_PIECES = st.sampled_from(["1", "9,", "[", "{", '{"a":', '["', "x", "é", "\r", '"', "#### 1"])
_LONG_RUNS = st.builds(
    lambda piece, n, tail: piece * n + tail,
    _RUN_PIECES | st.text(min_size=1, max_size=3),
    st.sampled_from([300, 1_200, 5_000]),
    st.text(max_size=5),
)
_ODD_CHARACTERS = st.characters(codec="utf-8", categories=["Cc", "Cf", "Zs", "Zl", "Zp", "So", "Mn"])
ANY_TEXT = st.text() | st.text(_ODD_CHARACTERS) | _REPLY_LIKE | _LONG_RUNS

# One line with no line break of any kind (what str.splitlines() breaks at: \n \r \v \f \x1c-\x1e \x85
# \u2028 \u2029 are all in Cc, Zl or Zp).
_LINE_CHARS = st.characters(exclude_categories=["Cc", "Cs", "Zl", "Zp"])
_LINE = st.text(_LINE_CHARS, min_size=1, max_size=30).map(str.strip).filter(bool)
_FILLER = st.text(string.ascii_letters, min_size=1, max_size=8)


# ---------------------------------------------------------------------------- 1. nothing crashes
@settings(max_examples=200, **SETTINGS)
@given(text=ANY_TEXT, task=st.sampled_from(ALL_TASKS), multiline=st.booleans())
# deeper than the recursion limit (which hypothesis raises while a test runs: 1200 would not be)
@example(text="[" * 50_000, task=TASKS["trec"], multiline=False)
@example(text="{" * 50_000, task=GSM8K, multiline=False)
@example(text="#### " + "1" * 5000, task=GSM8K, multiline=False)  # past int()'s 4300-digit limit
def test_arbitrary_text_never_crashes_the_answer_and_reply_parsers(text, task, multiline):
    number = parse_number(text)
    assert number is None or (isinstance(number, Decimal) and number.is_finite())
    for answer in (task.parse(text), parse_judgement(text, task)):
        if task.is_classification:
            assert answer is None or answer in task.labels
        else:
            assert answer is None or isinstance(answer, str)
    if task.numeric:
        assert task.parse(text) == (None if number is None else format_number(number))
    modes = ("example", "label_conditioned") if task.is_classification else ("example",)
    for mode in modes:
        items = parse_reply(text, task, mode, multiline=multiline)
        assert isinstance(items, list)
        for item in items:
            assert set(item) == {"input", "raw_output"}
            assert isinstance(item["input"], str) and isinstance(item["raw_output"], str)
            assert item["input"] == item["input"].strip()
            if mode == "label_conditioned":
                assert item["raw_output"] == ""


_TABLE_HEADS = st.sampled_from(
    ["", "text,label\n", "text\tlabel\n", "text,label,text\n", '{"text": "a", "label": "positive"}\n']
)
_TABLE_TEXT = st.builds(
    lambda head, body: head + body, _TABLE_HEADS, ANY_TEXT | _LONG_RUNS.map(lambda s: s * 30)
)


@pytest.fixture(scope="module")
def table_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tables")


@settings(max_examples=200, **SETTINGS)
@given(content=_TABLE_TEXT | st.binary(), fmt=st.sampled_from(["jsonl", "csv", "tsv"]))
@example(content="text,label\n" + "x" * 140_000 + ",positive\n", fmt="csv")  # over csv's field size limit
@example(content="text,label\nold Mac line ends\r" + "x,positive\r", fmt="csv")  # a lone \r in a cell
@example(content="[" * 50_000, fmt="jsonl")
@example(content='{"text": "a", "label": ' + "1" * 5000 + "}", fmt="jsonl")
def test_a_table_reader_returns_rows_or_raises_a_one_line_data_error(table_dir, content, fmt):
    path = table_dir / f"any.{fmt}"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    try:
        rows = read_table(str(path), "text", "label")
        check_labels(rows, TASKS["sst2"], str(path), output_field="label", input_field="text")
    except UserError as e:
        assert isinstance(e, DataError) and _one_line(e) and str(path) in str(e)
        return
    assert rows
    for row in rows:
        assert isinstance(row["input"], str) and row["input"].strip()
        assert row["output"] in TASKS["sst2"].labels and isinstance(row["source_line"], int)


@pytest.mark.parametrize("bad_row", ["x" * 140_000 + ",positive", 'a lone "\r" in a cell,positive'])
def test_an_unreadable_csv_row_is_named_by_its_own_line(table_dir, bad_row):
    path = table_dir / "named.csv"
    path.write_text("text,label\nfine,positive\n" + bad_row + "\n", newline="")
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:3: not readable as CSV"):
        read_table(str(path), "text", "label")


# ---------------------------------------------------------------------------- 2. labels
def _case(text: str, how: str) -> str:
    changed = getattr(text, how)()
    return changed if changed.lower() == text.lower() else text  # e.g. ß.upper() is SS: not the same word


_CASES = st.sampled_from(["lower", "upper", "title", "capitalize", "strip"])
_WRAPS = st.sampled_from([("", ""), ("**", "**"), ('"', '"'), ("'", "'"), ("(", ")"), ("[", "]"), ("*", "*")])
_LEADING = st.sampled_from(["", " ", "  ", "\t", " \xa0", "\u3000"])
_PUNCT = st.sampled_from(["", ".", "!", ",", ";", ":", " .", "?", " -"])


def _filler(task):
    """Words that are no label's word (nor part of one): the chatter around a label."""
    taken = _task_tokens(task)
    return st.lists(_FILLER.filter(lambda w: w.lower() not in taken), max_size=3).map(" ".join)


@st.composite
def _label_task(draw):
    """A custom classification task whose labels are words of any script (digits, CJK, Cyrillic, ...)."""
    letter = st.characters(categories=["Ll", "Lo", "Nd"]).filter(lambda c: c.lower() == c and c.isalnum())
    word = st.text(letter, min_size=1, max_size=6)
    label = st.lists(word, min_size=1, max_size=2).map(" ".join)
    labels = draw(st.lists(label, min_size=2, max_size=4, unique=True))
    return custom_task({"cue": "Class:", "labels": labels})


_ANY_CLASSIFICATION = st.sampled_from(CLASSIFICATION) | _label_task()


@st.composite
def _written_label(draw, task, word):
    """`word` as a model writes it after the cue: case changed, wrapped in quotes or markdown, punctuation and
    chatter around it on its line, anything (other labels' words too) on the lines below."""
    filler = _filler(task)
    before, after = draw(filler), draw(filler)
    opening, closing = draw(_WRAPS)
    line = f"{before} {opening}{_case(word, draw(_CASES))}{closing}{draw(_PUNCT)} {after}"
    below = draw(st.lists(st.sampled_from(task.words) | st.text(), max_size=4).map(" ".join))
    return draw(_LEADING) + line.strip(" ") + draw(st.sampled_from(["", "\n" + below]))


@settings(max_examples=200, **SETTINGS)
@given(data=st.data(), task=_ANY_CLASSIFICATION)
def test_a_label_written_with_the_usual_decoration_reads_back_as_that_label(data, task):
    label = data.draw(st.sampled_from(task.labels), "label")
    word = task.verbalize(label)
    assert task.parse(task.target({"input": "x", "output": label})) == label  # the training target itself
    written = data.draw(_written_label(task, word), "written")
    assert task.parse(written) == label
    # the judge reads it the same way, in plain text or the JSON of judge_schema
    assert parse_judgement(written, task) == label
    assert parse_judgement(json.dumps({"label": word}), task) == label


_EXTRA_LETTERS = st.text(
    st.characters(categories=["L"]).filter(lambda c: c.lower().isalnum()), min_size=1, max_size=4
)


@settings(max_examples=200, **SETTINGS)
@given(
    data=st.data(),
    task=_ANY_CLASSIFICATION,
    extra=_EXTRA_LETTERS | st.text(string.ascii_lowercase, min_size=1),
)
def test_a_word_that_merely_begins_with_a_label_word_is_not_that_label(data, task, extra):
    assert TASKS["trec"].parse("Humane treatment.") is None  # the case that named this property
    label = data.draw(st.sampled_from(task.labels), "label")
    longer = task.verbalize(label) + extra
    assert task.parse(data.draw(_written_label(task, longer), "written")) != label


# ---------------------------------------------------------------------------- 3. numbers
_NUMBERS = (
    st.integers().map(Decimal)
    | st.decimals(min_value=-(10**40), max_value=10**40, allow_nan=False, allow_infinity=False)
    | st.from_regex(r"-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,40})?", fullmatch=True).map(Decimal)
)
_WORK = st.builds(
    lambda text, earlier: text + (f"\n#### {earlier}\nWait, I recount." if earlier else ""),
    st.text().map(lambda s: s.replace("#", "")) | st.sampled_from(["", "3 + 4 = 7, then 7 * 2 = 14."]),
    st.sampled_from(["", "3", "-7.5", "1,000"]),  # an earlier final answer, taken back: the last one counts
)
_TAILS = st.sampled_from(["", " dollars", ".", " apples.", "\n", " (3 more than 4)", "\nso 12 - 5 = 7 left"])


@settings(max_examples=200, **SETTINGS)
@given(n=_NUMBERS, work=_WORK, tail=_TAILS, dollars=st.booleans(), commas=st.booleans(), raw=st.booleans())
@example(
    n=Decimal("1.00000000000000000000000000001"), work="", tail="", dollars=False, commas=False, raw=False
)
@example(n=Decimal("-0.0"), work="", tail="", dollars=False, commas=False, raw=False)
def test_a_number_written_as_the_final_answer_reads_back_equal(n, work, tail, dollars, commas, raw):
    canonical = format_number(n)
    # canonical: plain digits, no exponent, no trailing zeros, no '-0'
    assert re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?", canonical) and canonical != "-0"
    assert parse_number(canonical) == n and format_number(parse_number(canonical)) == canonical
    # as a model writes it: maybe not canonical (5.0), a dollar sign, thousands separators, units after it
    digits = format(n, ",f" if commas else "f") if raw or commas else canonical
    sign, digits = ("-", digits[1:]) if digits.startswith("-") else ("", digits)
    written = f"{sign}{'$' if dollars else ''}{digits}"
    solution = f"{work}\n#### {written}{tail}"
    assert parse_number(solution) == n
    assert GSM8K.parse(solution) == canonical
    assert parse_judgement(solution, GSM8K) == canonical
    assert parse_judgement(json.dumps({"solution": work, "final_answer": written}), GSM8K) == canonical
    if "\n" not in tail and not re.search(r"\d", tail):  # no '####': the last number in the text
        assert parse_number(f"{work.replace('#', '')} so the answer is {written}{tail}") == n


# ---------------------------------------------------------------------------- 4. teacher replies
def _plain_start(line: str) -> bool:
    """A line that cannot be taken for a list marker ('1.', '2)', '-', '*') or a field ('Output: ...')."""
    head = line.lower().lstrip("*")
    return not (
        line[0].isdecimal()
        or line[0] in "-*"
        or ":" in line
        or head.startswith(("input", "output", "question", "answer"))
    )


def _field_text(lines: int):
    """What a teacher writes in a field: lines that do not start another item or field. The first keeps
    anything but a leading '*' (the markdown of '**Input:** x' is read as part of the key)."""
    first = _LINE.filter(lambda s: not s.startswith("*"))
    more = st.lists(_LINE.filter(_plain_start), max_size=lines - 1)
    return st.builds(lambda a, b: [a, *b], first, more)


@st.composite
def _example_reply_items(draw, task):
    """(input, output) pairs; an output a label's word, a worked solution ending '#### N' or free text."""
    items = []
    for _ in range(draw(st.integers(1, 4))):
        text = "\n".join(draw(_field_text(3 if task.numeric else 2)))
        if task.is_classification:
            output = task.verbalize(draw(st.sampled_from(task.labels)))
        elif task.numeric:
            steps = draw(_field_text(3))
            output = "\n".join([*steps, f"#### {format_number(draw(_NUMBERS))}"])
        else:
            output = "\n".join(draw(_field_text(2)))
        items.append((text, output))
    return items


_KEY_STYLES = st.sampled_from(["{key}:", "**{key}:**", "**{key}**:", "{key} :"])


@settings(max_examples=150, **SETTINGS)
@given(data=st.data(), task=st.sampled_from([TASKS["trec"], GSM8K, NLI, FREE_FORM]))
def test_a_numbered_example_reply_reads_back_as_written(data, task):
    """The format of system_prompt: '1. Input: <text>\\n   Output: <output>' (Question/Answer for gsm8k)."""
    items = data.draw(_example_reply_items(task), "items")
    in_key, out_key = field_keys(task)
    style = data.draw(_KEY_STYLES, "key style")
    marker = data.draw(st.sampled_from(["{i}.", "{i})"]), "marker")
    blocks = []
    for i, (text, output) in enumerate(items, start=1):
        head = f"{marker.format(i=i)} {style.format(key=in_key)} "
        body = text.replace("\n", "\n   ")
        blocks.append(
            f"{head}{body}\n   {style.format(key=out_key)} {output.replace(chr(10), chr(10) + '   ')}"
        )
    chatter = data.draw(st.sampled_from(["", "Here are the new examples:\n", "Sure!\n\n"]), "chatter")
    reply = chatter + "\n".join(blocks)
    parsed = parse_reply(reply, task, "example")
    assert parsed == [{"input": text, "raw_output": output} for text, output in items]
    if task.is_classification:
        assert [task.parse(p["raw_output"]) for p in parsed] == [
            task.labels[task.words.index(out)] for _, out in items
        ]
    if task.numeric:
        answers = [parse_number(p["raw_output"]) for p in parsed]
        assert answers == [parse_number(out) for _, out in items]


@settings(max_examples=150, **SETTINGS)
@given(
    data=st.data(),
    task=st.sampled_from([TASKS["trec"], GSM8K, FREE_FORM]),
    ensure_ascii=st.booleans(),
    fenced=st.booleans(),
)
def test_a_json_reply_reads_back_whatever_its_strings_hold(data, task, ensure_ascii, fenced):
    """The JSON of reply_schema: any string, newlines and markers included, comes back (stripped). A teacher
    that ignores the schema's outer object and replies with the bare list is read the same way."""
    pairs = data.draw(st.lists(st.tuples(st.text(), st.text()), max_size=4), "pairs")
    bare = data.draw(st.booleans(), "bare list")

    def reply(items) -> str:
        body = json.dumps(items if bare else {"examples": items}, ensure_ascii=ensure_ascii)
        return f"```json\n{body}\n```" if fenced else body

    examples = reply([{"input": a, "output": b} for a, b in pairs])
    assert parse_examples(examples, task) == [{"input": a.strip(), "raw_output": b.strip()} for a, b in pairs]
    if task.is_classification:
        expected = [{"input": a.strip(), "raw_output": ""} for a, _ in pairs]
        assert parse_inputs(reply([{"input": a} for a, _ in pairs]), task) == expected
        assert parse_inputs(reply([a for a, _ in pairs]), task) == expected  # a list of strings


def _plain_item(task):
    """An input as a label-conditioned teacher lists it: no field name or markdown or quotes around it (the
    reader takes those off), no leading list marker."""
    noun = task.noun[0].lower()

    def plain(line: str) -> bool:
        head = line.lower()
        quoted = len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'"
        return not (
            quoted
            or line.startswith("*")
            or line.endswith("*")
            or head.startswith(("input", "question", noun, "output"))
            or re.match(r"(\d+[.)]|[-*])\s", line)
        )

    return _LINE.filter(plain)


@settings(max_examples=150, **SETTINGS)
@given(data=st.data(), task=st.sampled_from([TASKS["trec"], TASKS["sst2"], TASKS["snips"], NLI]))
def test_a_numbered_list_of_inputs_reads_back_as_written(data, task):
    """label_conditioned_messages asks for 'a numbered list of the new <nouns>, one per line'. With multiline
    (the parent spans lines) the plain lines right below an item continue it; without, they are remarks."""
    inputs = data.draw(st.lists(_plain_item(task), min_size=1, max_size=5), "inputs")
    continued = data.draw(
        st.lists(
            st.lists(_LINE.filter(_plain_start), max_size=2), min_size=len(inputs), max_size=len(inputs)
        ),
        "lines below",
    )
    marker = data.draw(st.sampled_from(["{i}.", "{i})", "-", "*"]), "marker")
    lines = []
    for i, (text, below) in enumerate(zip(inputs, continued), start=1):
        lines.append(f"{marker.format(i=i)} {text}")
        lines.extend(f"   {b}" for b in below)
    chatter = data.draw(st.sampled_from(["", "Sure! Here are new ones:\n", "```\n"]), "chatter")
    reply = chatter + "\n".join(lines)
    assert parse_reply(reply, task, "label_conditioned") == [{"input": t, "raw_output": ""} for t in inputs]
    joined = [" ".join([t, *below]) for t, below in zip(inputs, continued)]
    assert parse_reply(reply, task, "label_conditioned", multiline=True) == [
        {"input": t, "raw_output": ""} for t in joined
    ]


# ---------------------------------------------------------------------------- 5. table files
# Any text, and text rich in what CSV quotes or folds: line breaks (\r\n, a lone \r), quotes, delimiters.
_CELL_PIECES = st.sampled_from(["\r\n", "\r", "\n", '"', ",", "\t", " ", "\x00", "\ufeff", "a", "é"])
_CELL = st.text() | st.lists(_CELL_PIECES | st.text(max_size=3), max_size=12).map("".join)


@settings(max_examples=150, **SETTINGS)
@given(
    data=st.data(),
    fmt=st.sampled_from(["jsonl", "csv", "tsv"]),
    task=st.sampled_from(CLASSIFICATION),
    ensure_ascii=st.booleans(),
)
def test_rows_written_by_the_csv_and_json_modules_read_back(table_dir, data, fmt, task, ensure_ascii):
    """Every cell comes back as written, except that a CSV/TSV reader, reading lines the way a text-mode file
    does, folds a line break written as \\r\\n inside a quoted cell into \\n. A row whose text is blank is an
    error naming the field."""
    rows = data.draw(
        st.lists(st.tuples(_CELL, st.sampled_from(task.labels), _CELL), min_size=1, max_size=5),
        "rows",
    )
    path = table_dir / f"rows.{fmt}"
    with open(path, "w", encoding="utf-8", newline="") as f:
        if fmt == "jsonl":
            for text, label, note in rows:
                record = {"text": text, "label": label, "note": note}
                f.write(json.dumps(record, ensure_ascii=ensure_ascii) + "\n")
        else:
            writer = csv.writer(f, delimiter="," if fmt == "csv" else "\t")
            writer.writerow(["text", "label", "note"])
            writer.writerows(rows)

    def expected(cell: str) -> str:
        return cell if fmt == "jsonl" else re.sub(r"\r+\n", "\n", cell)

    if any(not expected(text).strip() for text, _, _ in rows):
        with pytest.raises(DataError, match=r"field 'text' is missing or empty") as err:
            read_table(str(path), "text", "label", keep_fields=("note",))
        assert _one_line(err.value)
        return
    read = read_table(str(path), "text", "label", keep_fields=("note",))
    assert [(r["input"], r["output"], r["note"]) for r in read] == [
        (expected(text), label, expected(note)) for text, label, note in rows
    ]
    check_labels(read, task, str(path), output_field="label", input_field="text")
