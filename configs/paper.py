"""The paper's setting for a Llama-2-7B student on a TPU slice, shared by the per-task configs."""

from configs.base import base_config


def paper_config(task: str):
    c = base_config()
    c.task = task
    c.workdir = f"runs/{task}"
    c.iterations = 10
    c.mesh = (
        1,
        -1,
        1,
    )  # FSDP over the whole slice: 7B full fine-tuning fits 32 GiB chips (benchmarks/compile_7b.py)
    c.model.source = "hf"
    c.model.path = "/data/Llama-2-7b-hf"  # override: --config.model.path=...
    c.model.dtype = "bfloat16"
    c.model.param_dtype = "float32"
    c.model.scan_layers = True
    c.model.remat_policy = "full"
    c.train.batch_size = 128  # the paper's effective batch
    c.train.micro_batch_size = 8  # per accumulation step, across the slice
    c.teacher.kind = "gemini"
    c.teacher.per_example = 1
    return c


def instruct_config(name: str, path: str):
    """A paper-sized instruct student (`path`: its HF directory) on TREC, trained through its chat
    template."""
    c = paper_config("trec")
    c.workdir = f"runs/{name}"
    c.model.path = path  # config.json, safetensors, tokenizer files
    c.data.prompt_format = "auto"  # an instruct model: its own chat template
    return c
