"""GSM8K (step-by-step, '#### <number>') with the paper's Llama-2-7B setting; tfds huggingface namespace."""

from configs.paper import paper_config


def get_config():
    c = paper_config("gsm8k")
    c.data.source = "tfds"
    c.data.tfds_name = "huggingface:gsm8k/main"
    c.data.input_field = "question"
    c.data.output_field = "answer"
    c.data.stratify = False
    c.data.seed_fraction = 0.01
    c.data.max_length = 512
    c.eval.max_new_tokens = 256
    c.teacher.max_output_tokens = 1024
    return c
