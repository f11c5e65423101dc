"""Per-task prompts, targets, answer parsers and scorers: the paper's five (sst2, trec, snips, gsm8k, casehold),
two more with offline data (rotten_tomatoes, newsgroups), and custom.

An example is a plain dict with at least `input` (the text the student sees) and `output` (the
gold answer: a label for classification, the full worked solution ending `#### N` for gsm8k).
A task turns it into `prompt` + `target` for training, reads the student's generation back with
`parse`, and compares with `score`. Everything here is pure string work.
"""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal, InvalidOperation
from typing import Mapping, Optional, Sequence

from llm2llm_jax.errors import UserError


class TaskError(UserError, ValueError):
    """An example or task definition that does not fit the task."""


def _norm_label(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


@dataclasses.dataclass(frozen=True)
class Task:
    """A classification task (labels set) or a free-form one (labels empty, answers parsed by regex).

    labels: the gold values stored in `output`; verbalizers: the words the student writes for them
    (same order). template: how `input` becomes the prompt body; cue: the line that asks for the answer.
    """

    name: str
    cue: str
    labels: tuple = ()
    verbalizers: tuple = ()
    template: str = "{input}"
    instruction: str = ""  # one line stating the task, put before the input
    answer_regex: str = ""  # free-form tasks: group 1 is the answer
    numeric: bool = False  # compare answers as numbers (gsm8k)

    def __post_init__(self):
        if self.labels and self.verbalizers and len(self.labels) != len(self.verbalizers):
            raise TaskError(f"task {self.name}: {len(self.labels)} labels but {len(self.verbalizers)} verbalizers")
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
            raise TaskError(f"{where or 'example'}: field 'output' is {example['output']!r}, not one of "
                            f"{list(self.labels)} for task {self.name}")
        if self.numeric and ("####" not in example["output"] or parse_number(example["output"]) is None):
            raise TaskError(f"{where or 'example'}: field 'output' has no final answer (`#### <number>`)")

    # -- reading answers back
    def parse(self, generation: str) -> Optional[str]:
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

    def _parse_label(self, generation: str) -> Optional[str]:
        text = _norm_label(generation.split("\n")[0] if generation.strip() else "")
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

    def score(self, prediction: Optional[str], example: Mapping) -> bool:
        if prediction is None:
            return False
        if self.numeric:
            return prediction == self.gold(example)
        if self.is_classification:
            return prediction == example["output"]
        return _norm_label(prediction) == _norm_label(self.gold(example))


# ---------------------------------------------------------------------------- numbers (gsm8k)
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?|-?\$?\.\d+")


def parse_number(text: Optional[str]) -> Optional[Decimal]:
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
    if n == n.to_integral_value():
        return str(int(n))
    return format(n.normalize(), "f")


# ---------------------------------------------------------------------------- the paper's tasks
TREC_COARSE = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
TREC_COARSE_WORDS = ("abbreviation", "description", "entity", "human", "location", "number")
SNIPS_INTENTS = ("AddToPlaylist", "BookRestaurant", "GetWeather", "PlayMusic", "RateBook", "SearchCreativeWork",
                 "SearchScreeningEvent")
SNIPS_WORDS = ("add to playlist", "book restaurant", "get weather", "play music", "rate book",
               "search creative work", "search screening event")

NEWSGROUP_TOPICS = ("comp.graphics", "misc.forsale", "rec.autos", "rec.motorcycles", "rec.sport.baseball", "sci.crypt",
                    "sci.med", "sci.space", "soc.religion.christian", "talk.politics.guns")
NEWSGROUP_WORDS = ("computer graphics", "for sale", "cars", "motorcycles", "baseball", "cryptography", "medicine",
                   "space", "christianity", "guns")

TASKS = {
    "sst2": Task("sst2", cue="Sentiment:", labels=("negative", "positive"),
                 instruction="Classify the sentiment of the movie review as positive or negative."),
    "trec": Task("trec", cue="Class:", labels=TREC_COARSE, verbalizers=TREC_COARSE_WORDS,
                 instruction="Classify what the question asks for: abbreviation, description, entity, human, "
                             "location or number."),
    "snips": Task("snips", cue="Intent:", labels=SNIPS_INTENTS, verbalizers=SNIPS_WORDS,
                  instruction="Classify the intent of the request."),
    "gsm8k": Task("gsm8k", cue="Answer:", template="Question: {input}", numeric=True,
                  instruction="Solve the math problem step by step and end with '#### <number>'."),
    "rotten_tomatoes": Task("rotten_tomatoes", cue="Sentiment:", labels=("negative", "positive"),
                            instruction="Classify the sentiment of the movie review as positive or negative."),
    "newsgroups": Task("newsgroups", cue="Topic:", labels=NEWSGROUP_TOPICS, verbalizers=NEWSGROUP_WORDS,
                       instruction="Classify the topic of the newsgroup post: " + ", ".join(NEWSGROUP_WORDS[:-1])
                                   + " or " + NEWSGROUP_WORDS[-1] + "."),
    "casehold": Task("casehold", cue="Answer:", labels=("A", "B", "C", "D", "E"),
                     instruction="Choose the holding (A-E) that the citing text refers to."),
}


def custom_task(spec: Mapping) -> Task:
    """A task defined entirely in the config: template, cue, labels (+ verbalizers) or answer_regex."""
    allowed = {f.name for f in dataclasses.fields(Task)}
    # Fields left empty in the config section are unset; lists may be given as "a,b,c" (command line).
    spec = {k: v for k, v in spec.items() if not (isinstance(v, (str, tuple, list)) and not v)}
    for key in ("labels", "verbalizers"):
        if isinstance(spec.get(key), str):
            spec[key] = tuple(part.strip() for part in spec[key].split(",") if part.strip())
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
    return Task(**spec)


def get_task(name: str, custom: Optional[Mapping] = None) -> Task:
    if name == "custom":
        return custom_task(custom or {})
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; choose one of {sorted(TASKS) + ['custom']}")
    return TASKS[name]


def casehold_input(context: str, holdings: Sequence[str]) -> str:
    """CaseHOLD's citing context and its five candidate holdings as one input text."""
    options = "\n".join(f"({letter}) {h}" for letter, h in zip("ABCDE", holdings))
    return f"{context}\n{options}"
