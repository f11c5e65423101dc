"""The tasks, each a `Task` holding all it knows: prompt, target, answer parser, scorer, labels, and what the
teacher is told. The paper's five (sst2, trec, snips, gsm8k, casehold), two more with offline data
(rotten_tomatoes, newsgroups), and custom.

An example is a plain dict with at least `input` (the text the student sees) and `output` (the
gold answer: a label for classification, the full worked solution ending `#### N` for gsm8k).
A task turns it into `prompt` + `target` for training, reads the student's generation back with
`parse`, and compares with `score`. Everything here is pure string work.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation

from llm2llm_jax.common.errors import UserError


class TaskError(UserError, ValueError):
    """An example or task definition that does not fit the task."""


def _norm_label(s: str) -> str:
    # Letters and digits of any script are word characters: with [^a-z0-9] a label such as '正面' read as
    # nothing, and 'negativeª' as 'negative'.
    return re.sub(r"[\W_]+", " ", s.lower()).strip()


@dataclasses.dataclass(frozen=True)
class Task:
    """A classification task (labels set) or a free-form one (labels empty, answers parsed by regex).

    labels: the gold values stored in `output`; verbalizers: the words the student writes for them
    (same order). template: how `input` becomes the prompt body; cue: the line that asks for the answer.
    The last four fields are what the teacher is told (teacher/prompts.py): a sentence describing the task,
    what one input is called (singular, plural), what each class means, and one worked exchange (an example
    shown and a new example written from it).
    """

    name: str
    cue: str
    labels: tuple = ()
    verbalizers: tuple = ()
    template: str = "{input}"
    instruction: str = ""  # one line stating the task, put before the input
    answer_regex: str = ""  # free-form tasks: group 1 is the answer
    numeric: bool = False  # compare answers as numbers (gsm8k)
    description: str = ""  # for the teacher; empty: the instruction
    noun: tuple = ("input", "inputs")
    class_meanings: Mapping = dataclasses.field(default_factory=dict)  # label -> what an input of it does
    worked: tuple = ()  # (shown example, new example), each with `input` and `output`

    def __post_init__(self):
        if self.labels and self.verbalizers and len(self.labels) != len(self.verbalizers):
            raise TaskError(
                f"task {self.name}: {len(self.labels)} labels but {len(self.verbalizers)} verbalizers"
            )
        if "{input}" not in self.template:
            raise TaskError(f"task {self.name}: template must contain '{{input}}', got {self.template!r}")

    # -- views
    @property
    def is_classification(self) -> bool:
        return bool(self.labels)

    @property
    def words(self) -> tuple:
        return self.verbalizers or self.labels

    def verbalize(self, label: str) -> str:
        if not self.is_classification:
            return label
        try:
            return self.words[self.labels.index(label)]
        except ValueError:
            raise TaskError(f"task {self.name}: label {label!r} is not one of {list(self.labels)}") from None

    # -- prompt and target
    def prompt(self, example: Mapping) -> str:
        body = self.template.format(**{k: v for k, v in example.items() if isinstance(v, str)})
        head = f"{self.instruction}\n" if self.instruction else ""
        return f"{head}{body}\n{self.cue}"

    def target(self, example: Mapping) -> str:
        return " " + self.verbalize(example["output"]).strip()

    def validate(self, example: Mapping, where: str = "") -> None:
        for field in ("input", "output"):
            if not isinstance(example.get(field), str) or not example[field].strip():
                raise TaskError(f"{where or 'example'}: field '{field}' is missing or empty")
        if self.is_classification and example["output"] not in self.labels:
            raise TaskError(
                f"{where or 'example'}: label {example['output']!r} is not one of "
                f"[{', '.join(self.labels)}] (task {self.name})"
            )
        if self.numeric and ("####" not in example["output"] or parse_number(example["output"]) is None):
            raise TaskError(f"{where or 'example'}: field 'output' has no final answer (`#### <number>`)")

    # -- reading answers back
    def parse(self, generation: str) -> str | None:
        """The answer in a student/teacher generation, as a gold-comparable string, or None."""
        if self.is_classification:
            return self._parse_label(generation)
        if self.numeric:
            n = parse_number(generation)
            return None if n is None else format_number(n)
        if self.answer_regex:
            m = re.search(self.answer_regex, generation)
            return m.group(1).strip() if m else None
        text = generation.strip().split("\n")[0].strip()
        return text or None

    def _parse_label(self, generation: str) -> str | None:
        first_line = next((line for line in generation.split("\n") if line.strip()), "")  # past blank lines
        text = _norm_label(first_line)
        if not text:
            return None
        # Longest verbalizer first, so "not entailment" wins over "entailment".
        candidates = sorted(zip(self.words, self.labels), key=lambda wl: -len(wl[0]))
        for word, label in candidates:
            w = _norm_label(word)
            if text == w or text.startswith(w + " "):
                return label
        for word, label in candidates:  # the label somewhere in the first line
            if re.search(rf"\b{re.escape(_norm_label(word))}\b", text):
                return label
        return None

    def gold(self, example: Mapping) -> str:
        if self.numeric:
            n = parse_number(example["output"])
            return format_number(n) if n is not None else ""
        return example["output"].strip()

    def score(self, prediction: str | None, example: Mapping) -> bool:
        if prediction is None:
            return False
        if self.numeric:
            return prediction == self.gold(example)
        if self.is_classification:
            return prediction == example["output"]
        return _norm_label(prediction) == _norm_label(self.gold(example))


# ---------------------------------------------------------------------------- numbers (gsm8k)
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?|-?\$?\.\d+")


def parse_number(text: str | None) -> Decimal | None:
    """The final answer as a number: the first number after the last '####' if there is one, else the
    last number in the text. Handles 1,234  $5  -3  5.0  .5  and trailing units ('12 apples')."""
    if not text:
        return None
    if "####" in text:
        found = _NUMBER.findall(text.rsplit("####", 1)[1])
        raw = found[0] if found else None
    else:
        found = _NUMBER.findall(text)
        raw = found[-1] if found else None
    if raw is None:
        return None
    try:
        return Decimal(raw.replace("$", "").replace(",", ""))
    except InvalidOperation:
        return None


def format_number(n: Decimal) -> str:
    """Canonical string: 5.0 -> '5', 0.50 -> '0.5', -3 -> '-3'."""
    # Trailing zeros cut from the digits by hand: str(int(n)) refuses more than 4300 digits (ValueError on a
    # runaway '#### 111...'), and normalize() rounds to 28 digits (1.00000000000000000000000000001 -> '1').
    text = format(n, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


# ---------------------------------------------------------------------------- the paper's tasks
TREC_COARSE = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
TREC_COARSE_WORDS = ("abbreviation", "description", "entity", "human", "location", "number")
SNIPS_INTENTS = (
    "AddToPlaylist",
    "BookRestaurant",
    "GetWeather",
    "PlayMusic",
    "RateBook",
    "SearchCreativeWork",
    "SearchScreeningEvent",
)
SNIPS_WORDS = (
    "add to playlist",
    "book restaurant",
    "get weather",
    "play music",
    "rate book",
    "search creative work",
    "search screening event",
)

NEWSGROUP_TOPICS = (
    "comp.graphics",
    "misc.forsale",
    "rec.autos",
    "rec.motorcycles",
    "rec.sport.baseball",
    "sci.crypt",
    "sci.med",
    "sci.space",
    "soc.religion.christian",
    "talk.politics.guns",
)
NEWSGROUP_WORDS = (
    "computer graphics",
    "for sale",
    "cars",
    "motorcycles",
    "baseball",
    "cryptography",
    "medicine",
    "space",
    "christianity",
    "guns",
)

TREC_MEANINGS = {
    "ABBR": "asks what an abbreviation stands for or what something is short for",
    "DESC": "asks for a definition, a description, a reason or a manner (what is, why, how)",
    "ENTY": "asks for a thing: an animal, a food, a product, a color, a sport, a word, an event and so on",
    "HUM": "asks for a person, a group of people or an organization (who)",
    "LOC": "asks for a place: a city, a country, a river, a mountain, an address (where)",
    "NUM": "asks for a number: a count, a date, an age, a price, a distance, a speed (how many, when)",
}
SENTIMENT_MEANINGS = {
    "negative": "says something bad about the movie",
    "positive": "says something good about the movie",
}
NEWSGROUP_MEANINGS = {
    "comp.graphics": "is about computer graphics: images, file formats, rendering, 3D software",
    "misc.forsale": "offers something for sale or asks to buy something",
    "rec.autos": "is about cars: models, engines, driving, repairs",
    "rec.motorcycles": "is about motorcycles: bikes, riding, gear",
    "rec.sport.baseball": "is about baseball: teams, players, games, statistics",
    "sci.crypt": "is about cryptography: encryption, keys, privacy",
    "sci.med": "is about medicine: illnesses, treatments, doctors, drugs",
    "sci.space": "is about space: rockets, orbits, NASA, planets",
    "soc.religion.christian": "is about christianity: the bible, faith, the church",
    "talk.politics.guns": "is about guns: gun laws, firearms, the right to bear arms",
}
REVIEW_SENTENCE = ("movie review sentence", "movie review sentences")

TASKS = {
    "sst2": Task(
        "sst2",
        cue="Sentiment:",
        labels=("negative", "positive"),
        instruction="Classify the sentiment of the movie review as positive or negative.",
        description="classify the sentiment of a movie review as positive or negative.",
        noun=REVIEW_SENTENCE,
        class_meanings=SENTIMENT_MEANINGS,
        worked=(
            {"input": "the plot is thin but the performances are wonderful", "output": "positive"},
            {"input": "despite a clumsy opening, the film's warmth wins you over", "output": "positive"},
        ),
    ),
    "trec": Task(
        "trec",
        cue="Class:",
        labels=TREC_COARSE,
        verbalizers=TREC_COARSE_WORDS,
        instruction="Classify what the question asks for: abbreviation, description, entity, human, "
        "location or number.",
        description="classify what a question asks for: abbreviation, description, entity, human, location "
        "or number.",
        noun=("question", "questions"),
        class_meanings=TREC_MEANINGS,
        worked=(
            {"input": "What does NASA stand for ?", "output": "ABBR"},
            {"input": "What does the abbreviation UNESCO mean ?", "output": "ABBR"},
        ),
    ),
    "snips": Task(
        "snips",
        cue="Intent:",
        labels=SNIPS_INTENTS,
        verbalizers=SNIPS_WORDS,
        instruction="Classify the intent of the request.",
        description="classify the intent of a voice-assistant request.",
        noun=("request", "requests"),
        worked=(
            {"input": "put this song on my workout mix", "output": "AddToPlaylist"},
            {"input": "add the new Adele track to my chill evening list", "output": "AddToPlaylist"},
        ),
    ),
    "gsm8k": Task(
        "gsm8k",
        cue="Answer:",
        template="Question: {input}",
        numeric=True,
        instruction="Solve the math problem step by step and end with '#### <number>'.",
        description="solve grade-school math word problems step by step.",
        worked=(
            {
                "input": "Tom has 3 boxes with 4 pens each. He gives away 5 pens. How many pens are left?",
                "output": "Tom has 3 * 4 = 12 pens. After giving away 5 he has 12 - 5 = 7 pens.\n#### 7",
            },
            {
                "input": "A baker makes 5 trays of 6 rolls and sells 17 rolls. How many rolls are left?",
                "output": "The baker makes 5 * 6 = 30 rolls. After selling 17, 30 - 17 = 13 rolls are left.\n"
                "#### 13",
            },
        ),
    ),
    "rotten_tomatoes": Task(
        "rotten_tomatoes",
        cue="Sentiment:",
        labels=("negative", "positive"),
        instruction="Classify the sentiment of the movie review as positive or negative.",
        description="classify the sentiment of a movie review sentence as positive or negative.",
        noun=REVIEW_SENTENCE,
        class_meanings=SENTIMENT_MEANINGS,
        worked=(
            {
                "input": "A gripping, beautifully acted drama that earns every one of its tears.",
                "output": "positive",
            },
            {
                "input": "The cast is charming and the jokes land far more often than they miss.",
                "output": "positive",
            },
        ),
    ),
    "newsgroups": Task(
        "newsgroups",
        cue="Topic:",
        labels=NEWSGROUP_TOPICS,
        verbalizers=NEWSGROUP_WORDS,
        instruction="Classify the topic of the newsgroup post: "
        + ", ".join(NEWSGROUP_WORDS[:-1])
        + " or "
        + NEWSGROUP_WORDS[-1]
        + ".",
        description="classify the topic of a newsgroup post: computer graphics, for sale, cars, motorcycles, "
        "baseball, cryptography, medicine, space, christianity or guns.",
        noun=("newsgroup post", "newsgroup posts"),
        class_meanings=NEWSGROUP_MEANINGS,
        # the corpus's posts are lower-cased, without punctuation, the subject line first
        worked=(
            {
                "input": "shuttle launch date does anyone know when the next shuttle launch is planned i "
                "heard the mission was delayed again because of a problem with the main engines",
                "output": "sci.space",
            },
            {
                "input": "mars probe images the latest pictures from the probe show the landing site in more "
                "detail and the team expects the rover to leave the lander next week",
                "output": "sci.space",
            },
        ),
    ),
    "casehold": Task(
        "casehold",
        cue="Answer:",
        labels=("A", "B", "C", "D", "E"),
        instruction="Choose the holding (A-E) that the citing text refers to.",
        description="choose which of five holdings (A-E) a legal citing text refers to.",
        noun=("citing text", "citing texts"),
    ),
}


def read_task_file(path: str) -> dict:
    """The fields of a task written in a YAML or JSON file (`custom_task.file`): any Task field, e.g.
    description, labels, verbalizers, class_meanings {label: what an input of it does}, and worked: a
    shown example and a new one, each {input, output}."""
    import yaml  # YAML is a superset of JSON: one reader for both

    try:
        with open(path, encoding="utf-8") as f:
            fields = yaml.safe_load(f)
    except OSError as e:
        raise TaskError(f"custom_task.file={path!r}: cannot read it ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        raise TaskError(f"{where}: not valid YAML or JSON ({getattr(e, 'problem', e)})") from None
    if not isinstance(fields, dict):
        raise TaskError(f"{path}: expected a mapping of task fields, got {type(fields).__name__}")
    return fields


def _meanings(value) -> dict:
    """class_meanings as a dict: given as one, or on the command line as 'LABEL=meaning; LABEL=meaning'."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    pairs = [part.split("=", 1) for part in str(value).split(";") if part.strip()]
    bad = [p[0] for p in pairs if len(p) != 2]
    if bad:
        raise TaskError(f"class_meanings: write 'LABEL=what an input of it does; ...', got {bad[0]!r}")
    return {k.strip(): v.strip() for k, v in pairs}


def _worked(value) -> tuple:
    """worked as (shown, new), each with `input` and `output`."""
    if not (isinstance(value, (list, tuple)) and len(value) == 2) or not all(
        isinstance(ex, Mapping) and {"input", "output"} <= set(ex) for ex in value
    ):
        raise TaskError("worked: give two examples, the one shown and a new one, each with input and output")
    return tuple({"input": str(ex["input"]), "output": str(ex["output"])} for ex in value)


def custom_task(spec: Mapping) -> Task:
    """A task defined entirely in the config: template, cue, labels (+ verbalizers) or answer_regex, and
    what the teacher knows of it (description, class_meanings, worked), from config fields or from a YAML or
    JSON file named by `file` (a field set in the config wins)."""
    allowed = {f.name for f in dataclasses.fields(Task)}
    # Fields left empty in the config section are unset; lists may be given as "a,b,c" (command line).
    spec = {k: v for k, v in spec.items() if not (isinstance(v, (str, tuple, list, Mapping)) and not v)}
    if "file" in spec:
        spec = {**read_task_file(spec.pop("file")), **spec}
    for key in ("labels", "verbalizers"):
        if isinstance(spec.get(key), str):
            spec[key] = tuple(part.strip() for part in spec[key].split(",") if part.strip())
    if "class_meanings" in spec:
        spec["class_meanings"] = _meanings(spec["class_meanings"])
    if "worked" in spec:
        spec["worked"] = _worked(spec["worked"])
    if isinstance(spec.get("noun"), (list, tuple)):
        spec["noun"] = tuple(spec["noun"])
    unknown = set(spec) - allowed
    if unknown:
        raise TaskError(f"custom task: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    if "cue" not in spec:
        raise TaskError("field 'cue' is required (e.g. --config.custom_task.cue=Answer:)")
    spec = dict(spec)
    for key in ("labels", "verbalizers"):
        if key in spec:
            spec[key] = tuple(spec[key])
    spec.setdefault("name", "custom")
    unknown_classes = set(spec.get("class_meanings", {})) - set(spec.get("labels", ()))
    if unknown_classes:
        raise TaskError(
            f"class_meanings names {sorted(unknown_classes)}, which are not among the labels "
            f"{list(spec.get('labels', ()))}"
        )
    return Task(**spec)


def get_task(name: str, custom: Mapping | None = None) -> Task:
    if name == "custom":
        return custom_task(custom or {})
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; choose one of {sorted(TASKS) + ['custom']}")
    return TASKS[name]


def task_from_config(config) -> Task:
    """The task a run's config names (`config.task`; `config.custom_task` for 'custom')."""
    return get_task(config.task, config.custom_task.to_dict() if config.task == "custom" else None)


def casehold_input(context: str, holdings: Sequence[str]) -> str:
    """CaseHOLD's citing context and its five candidate holdings as one input text."""
    options = "\n".join(f"({letter}) {h}" for letter, h in zip("ABCDE", holdings))
    return f"{context}\n{options}"
