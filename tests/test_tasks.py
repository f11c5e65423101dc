"""Task prompts, parsers and scorers on hand-written cases and real offline TREC / GSM8K rows."""

from decimal import Decimal

import pytest

from llm2llm_jax.data.tasks import TASKS, TaskError, casehold_input, custom_task, get_task, parse_number


@pytest.mark.parametrize(
    "text,expected",
    [
        ("#### 1,234", Decimal(1234)),
        ("so she pays $5.", Decimal(5)),
        ("#### 5.0", Decimal(5)),
        ("The answer is 12 apples", Decimal(12)),
        ("#### -3", Decimal(-3)),
        ("#### $1,000,000", Decimal(1000000)),
        ("3 + 4 = 7\n#### 7 dollars", Decimal(7)),
        ("#### .5", Decimal("0.5")),
        ("no number here", None),
        ("", None),
        ("#### ", None),
        ("#### 3\nWait, I recount.\n#### 4", Decimal(4)),
        ("3 + 4 = 7, then 7 * 2 = 14", Decimal(14)),
    ],
)
def test_parse_number(text, expected):
    assert parse_number(text) == expected


def test_gsm8k_scoring():
    t = TASKS["gsm8k"]
    gold = {"input": "q", "output": "She has 3 + 2 = <<3+2=5>>5 apples.\n#### 5"}
    assert t.gold(gold) == "5"
    for gen, ok in [
        (" 2 + 3 = 5\n#### 5", True),
        ("#### 5.0", True),
        ("#### $5", True),
        ("#### 5 apples", True),
        ("The total is 5", True),
        ("#### 6", False),
        ("I do not know", False),
        ("", False),
    ]:
        assert t.score(t.parse(gen), gold) is ok, gen
    assert t.score(t.parse("#### 1,234"), {"input": "q", "output": "#### 1234"})
    t.validate(gold)
    with pytest.raises(TaskError, match="final answer"):
        t.validate({"input": "q", "output": "five"})
    assert t.prompt(gold).startswith("Solve the math problem") and t.prompt(gold).endswith("\nAnswer:")


@pytest.mark.parametrize(
    "name,gen,label",
    [
        ("sst2", " positive", "positive"),
        ("sst2", "Negative.", "negative"),
        ("sst2", "It is positive overall", "positive"),
        ("sst2", "unsure", None),
        ("trec", " location", "LOC"),
        ("trec", "Human\nmore text", "HUM"),
        ("trec", "number (a date)", "NUM"),
        ("snips", " play music", "PlayMusic"),
        ("snips", "search screening event", "SearchScreeningEvent"),
        ("casehold", " C", "C"),
        ("casehold", "(E)", "E"),
    ],
)
def test_classification_parse(name, gen, label):
    assert get_task(name).parse(gen) == label


def test_a_label_inside_a_longer_label_is_not_taken_for_it():
    """Longest verbalizer first: 'not entailment' is not read as 'entailment', 'play music' not as 'play'."""
    nli = custom_task(
        {
            "cue": "Answer:",
            "labels": ["entailment", "not_entailment"],
            "verbalizers": ["entailment", "not entailment"],
        }
    )
    assert nli.parse("I think it is not entailment") == "not_entailment"
    assert nli.parse("clearly entailment") == "entailment"
    media = custom_task(
        {"cue": "Intent:", "labels": ["Play", "PlayMusic"], "verbalizers": ["play", "play music"]}
    )
    assert media.parse("play music by Queen") == "PlayMusic" and media.parse("play the video") == "Play"


def test_a_word_that_merely_begins_with_a_label_is_not_that_label():
    """The answer must be the label's whole word: 'humane' is not HUM, 'numbers' not NUM, 'entityx' not ENTY;
    the word followed by punctuation or more words still is."""
    trec = get_task("trec")
    for reply in ("humane", "Humane treatment", "numbers", "entityx", "locations near here"):
        assert trec.parse(reply) is None, reply
    assert trec.parse("human, a person") == "HUM" and trec.parse("Number.") == "NUM"
    assert trec.parse("entity") == "ENTY" and trec.parse("location of it") == "LOC"


def test_classification_prompt_target_and_label_set():
    t = TASKS["trec"]
    ex = {"input": "Who wrote Hamlet ?", "output": "HUM"}
    assert t.prompt(ex).endswith("Who wrote Hamlet ?\nClass:")
    assert t.target(ex) == " human"
    assert t.score(t.parse(t.target(ex)), ex)
    with pytest.raises(TaskError, match="not one of"):
        t.validate({"input": "x", "output": "PERSON"})
    assert len(TASKS["snips"].labels) == 7 and len(TASKS["casehold"].labels) == 5


def test_casehold_input_lists_five_holdings():
    text = casehold_input("Citing text (<HOLDING>)", [f"holding {i}" for i in range(5)])
    assert "(A) holding 0" in text and "(E) holding 4" in text


def test_custom_task_from_config():
    t = custom_task(
        {
            "name": "topic",
            "template": "Headline: {input}",
            "cue": "Topic:",
            "labels": ["world", "sports", "business", "tech"],
        }
    )
    ex = {"input": "Team wins cup", "output": "sports"}
    assert t.prompt(ex) == "Headline: Team wins cup\nTopic:" and t.target(ex) == " sports"
    assert t.parse("Sports") == "sports"
    free = custom_task({"cue": "Capital:", "answer_regex": r"^\s*([A-Z][a-z]+)"})
    assert free.parse(" Paris is the capital") == "Paris"
    assert free.score("paris", {"input": "France", "output": "Paris"})
    with pytest.raises(TaskError, match="unknown field"):
        custom_task({"cue": "A:", "lables": ["x"]})
    with pytest.raises(TaskError, match="cue"):
        custom_task({"labels": ["x"]})


def test_real_trec_rows():
    from llm2llm_jax.data.offline import load_trec

    rows = load_trec()
    t = TASKS["trec"]
    for row in rows[:200]:
        t.validate(row)
        assert t.parse(t.target(row)) == row["output"]
    assert rows[0]["input"] == "How did serfdom develop in and then leave Russia ?"


def test_real_gsm8k_rows():
    from llm2llm_jax.data.offline import load_gsm8k_test

    rows = load_gsm8k_test()
    t = TASKS["gsm8k"]
    for row in rows:
        t.validate(row)
        assert t.score(t.parse(t.target(row)), row)  # the gold solution scores as correct
    assert t.gold(rows[0]) == "18"  # Janet's ducks


def test_a_custom_task_from_a_file_gets_the_teacher_prompts_of_the_built_in_one(tmp_path):
    """TREC written out as a user's YAML file (labels, words, description, class meanings, a worked example)
    and used as task=custom: every teacher prompt, in both modes, is the built-in task's."""
    import yaml

    from llm2llm_jax.teacher.prompts import build_messages, label_conditioned_messages, system_prompt

    trec = TASKS["trec"]
    fields = {
        "cue": trec.cue,
        "labels": list(trec.labels),
        "verbalizers": list(trec.verbalizers),
        "instruction": trec.instruction,
        "description": trec.description,
        "noun": list(trec.noun),
        "class_meanings": dict(trec.class_meanings),
        "worked": [dict(ex) for ex in trec.worked],
    }
    (tmp_path / "trec.yaml").write_text(yaml.safe_dump(fields))
    mine = custom_task({"name": "trec", "cue": "", "file": str(tmp_path / "trec.yaml")})
    parent = {"input": "Who wrote Hamlet ?", "output": "HUM"}
    for structured in (False, True):
        assert system_prompt(mine, structured) == system_prompt(trec, structured)
        assert build_messages(mine, parent, " location", 2, structured=structured) == build_messages(
            trec, parent, " location", 2, structured=structured
        )
        assert label_conditioned_messages(mine, parent, 3, structured) == label_conditioned_messages(
            trec, parent, 3, structured
        )
    # the same knowledge from config fields on the command line, the worked example left out
    cli = custom_task(
        {
            "cue": "Class:",
            "labels": "HUM,LOC",
            "description": "tell who from where",
            "class_meanings": "HUM=asks for a person; LOC=asks for a place",
        }
    )
    assert cli.class_meanings == {"HUM": "asks for a person", "LOC": "asks for a place"}
    assert (
        "tell who from where" in system_prompt(cli)
        and "asks for a place"
        in label_conditioned_messages(cli, {"input": "Where is Lima ?", "output": "LOC"}, 2, False)[1][-1][
            "content"
        ]
    )


def test_a_bad_task_file_or_field_is_one_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("labels: [a, b\ncue: x\n")
    with pytest.raises(TaskError, match=r"bad.yaml:\d+: not valid YAML or JSON"):
        custom_task({"file": str(tmp_path / "bad.yaml")})
    with pytest.raises(TaskError, match=r"cannot read it"):
        custom_task({"file": str(tmp_path / "missing.yaml")})
    with pytest.raises(TaskError, match=r"class_meanings names \['NUM'\], which are not among the labels"):
        custom_task({"cue": "C:", "labels": "HUM,LOC", "class_meanings": "NUM=asks for a number"})
    with pytest.raises(TaskError, match=r"class_meanings: write 'LABEL=what an input of it does"):
        custom_task({"cue": "C:", "labels": "HUM", "class_meanings": "a person"})
    with pytest.raises(TaskError, match="worked: give two examples"):
        custom_task({"cue": "C:", "labels": "HUM", "worked": [{"input": "x"}]})


def test_a_label_after_blank_lines_is_read_from_the_first_line_with_text():
    trec = TASKS["trec"]
    assert trec.parse("\nhuman") == "HUM" and trec.parse("  \n\n location\nnumber") == "LOC"
    assert trec.parse("\n\n") is None and trec.parse("\nthe answer is\nhuman") is None
