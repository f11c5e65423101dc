"""What the accelerator check needs on a GPU machine that has no network: wheels and assets, packed here and
unpacked there.

The GPU image has jax with CUDA, flax, optax, orbax-checkpoint, transformers, torch and peft, but not
the rest of this project's dependencies; and a call to that machine carries at most 64 MiB, while
the SmolLM2 GGUF alone is 94 MiB. So:

  --prepare (here, with the package index reachable) writes .accel/ (git-ignored):
      wheels/   every package the project needs that the image lacks (Python 3.12, manylinux x86-64),
                at the versions installed here;
      cache/    the TREC and GSM8K files as the asset cache keeps them;
      gguf-part-1, gguf-part-2   the SmolLM2 GGUF in two pieces, sized so that each call fits;
    and prints the two device calls that carry them (a warm machine keeps ignored paths between calls).
  --assemble (there, run by accelerator_check.sh) joins the parts into the asset cache and checks the
    GGUF's pinned sha256; without the parts it says so and the check skips what needs real weights.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from importlib import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from llm2llm_jax.common import assets

ACCEL = os.path.join(ROOT, ".accel")
PARTS = [os.path.join(ACCEL, f"gguf-part-{i}") for i in (1, 2)]
FIRST_PART_BYTES = 36 << 20  # the wheels travel with it; the second part carries the rest alone
# What the GPU image already has (its recorded package list, trimmed to what this project could need): never
# carried.
IMAGE_PACKAGES = {
    "absl-py",
    "accelerate",
    "aiofiles",
    "aiohappyeyeballs",
    "aiohttp",
    "aiosignal",
    "annotated-doc",
    "anyio",
    "attrs",
    "certifi",
    "charset-normalizer",
    "chex",
    "click",
    "cloudpickle",
    "contourpy",
    "cycler",
    "einops",
    "etils",
    "filelock",
    "flatbuffers",
    "flax",
    "fonttools",
    "fsspec",
    "grpcio",
    "h11",
    "h5py",
    "hf-xet",
    "httpcore",
    "httpx",
    "huggingface-hub",
    "humanize",
    "idna",
    "iniconfig",
    "jax",
    "jax-cuda13-pjrt",
    "jax-cuda13-plugin",
    "jaxlib",
    "jinja2",
    "joblib",
    "kiwisolver",
    "markdown",
    "markdown-it-py",
    "markupsafe",
    "matplotlib",
    "mdurl",
    "ml-dtypes",
    "mpmath",
    "msgpack",
    "multidict",
    "networkx",
    "numpy",
    "nvidia-ml-py",
    "opt-einsum",
    "optax",
    "orbax-checkpoint",
    "packaging",
    "pandas",
    "peft",
    "pillow",
    "pip",
    "pluggy",
    "portalocker",
    "propcache",
    "protobuf",
    "psutil",
    "pyarrow",
    "pygments",
    "pyparsing",
    "python-dateutil",
    "pytest",
    "pyyaml",
    "regex",
    "requests",
    "rich",
    "safetensors",
    "scipy",
    "sentencepiece",
    "setuptools",
    "simplejson",
    "six",
    "sympy",
    "tensorstore",
    "tokenizers",
    "toolz",
    "torch",
    "tqdm",
    "transformers",
    "treescope",
    "triton",
    "typing-extensions",
    "urllib3",
    "wheel",
    "wrapt",
    "yarl",
    "zipp",
}
PLATFORMS = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]
MARKER_ENV = {
    "extra": "",
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
}


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def missing_on_image() -> dict[str, str]:
    """{package: installed version} for the runtime dependencies of llm2llm_jax (all the way down) that
    the GPU image lacks."""
    from packaging.requirements import Requirement

    found: dict[str, str] = {}

    def walk(name: str) -> None:
        key = _canonical(name)
        if key in found or key in IMAGE_PACKAGES:
            return
        dist = metadata.distribution(name)
        found[key] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(MARKER_ENV):
                walk(req.name)

    walk("llm2llm_jax")
    found.pop("llm2llm-jax")
    return found


def download_wheels(target: str) -> None:
    os.makedirs(target, exist_ok=True)
    platform_args = [a for p in PLATFORMS for a in ("--platform", p)]
    for name, version in sorted(missing_on_image().items()):
        spec = f"{name}=={version}"
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            *platform_args,
            "-d",
            target,
            spec,
        ]
        if subprocess.run(cmd, capture_output=True, text=True).returncode != 0:
            # Published as source only (pure Python): build the wheel here, it installs anywhere.
            subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", target, spec], check=True
            )
        print(f"  wheel: {spec}", flush=True)


def prepare() -> None:
    wheels = os.path.join(ACCEL, "wheels")
    shutil.rmtree(wheels, ignore_errors=True)
    print(f"packages the GPU image lacks -> {wheels}", flush=True)
    download_wheels(wheels)
    cache = os.path.join(ACCEL, "cache")
    for asset in (assets.TREC_QUESTIONS, assets.GSM8K_TEST):
        source = assets.asset_path(asset)
        target = os.path.join(cache, os.path.relpath(assets.extracted_path(asset), assets.cache_dir()))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(source, target)
    gguf = assets.smollm2_gguf_path()
    with open(gguf, "rb") as src:
        for part, size in zip(PARTS, (FIRST_PART_BYTES, None)):
            with open(part, "wb") as dst:
                dst.write(src.read(size) if size else src.read())
    mib = {p: os.path.getsize(p) / 2**20 for p in PARTS}
    wheels_mib = sum(os.path.getsize(os.path.join(wheels, f)) for f in os.listdir(wheels)) / 2**20
    print(
        f"wheels {wheels_mib:.1f} MiB, {PARTS[0]} {mib[PARTS[0]]:.1f} MiB, {PARTS[1]} {mib[PARTS[1]]:.1f} MiB"
    )
    print(
        "Device calls (the second within the machine's warm window, so that it keeps the first's files):\n"
        '  1. carry [".accel/wheels", ".accel/cache", ".accel/gguf-part-1"], command "true"\n'
        '  2. carry [".accel/gguf-part-2"], command "bash benchmarks/accelerator_check.sh"'
    )


def assemble() -> int:
    """Join the carried parts into the asset cache (checked against the pinned sha256); 0 when the GGUF
    is there afterwards, 1 when it is not (the check then skips what needs it)."""
    asset = assets.SMOLLM2_GGUF
    target = assets.extracted_path(asset)
    if os.path.exists(target):
        return 0
    if not all(os.path.exists(p) for p in PARTS):
        print(
            f"accelerator_carry: no SmolLM2 GGUF ({', '.join(os.path.basename(p) for p in PARTS)} not "
            f"carried); tests and runs that need its real weights are skipped",
            flush=True,
        )
        return 1
    os.makedirs(os.path.dirname(target), exist_ok=True)
    partial = target + ".partial"
    with open(partial, "wb") as dst:
        for part in PARTS:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 20)
    digest = assets.sha256_of(partial)
    if digest != asset.member_sha256:
        os.remove(partial)
        print(
            f"accelerator_carry: the joined GGUF has sha256 {digest}, not the pinned {asset.member_sha256}; "
            f"run --prepare again and carry both parts from the same run",
            flush=True,
        )
        return 1
    os.replace(partial, target)
    print(f"accelerator_carry: SmolLM2 GGUF assembled into {target}", flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--prepare", action="store_true", help="here: write .accel/ (needs the package index)")
    mode.add_argument(
        "--assemble", action="store_true", help="there: join the GGUF parts into the asset cache"
    )
    args = ap.parse_args()
    if args.prepare:
        prepare()
        return 0
    return assemble()


if __name__ == "__main__":
    sys.exit(main())
