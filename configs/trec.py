"""TREC (6 coarse labels) with the paper's Llama-2-7B setting; data from tfds's huggingface namespace."""

from configs.paper import paper_config


def get_config():
    c = paper_config("trec")
    c.data.source = "tfds"
    c.data.tfds_name = "huggingface:trec"
    c.data.input_field = "text"
    c.data.output_field = "coarse_label"
    c.data.seed_fraction = 0.01
    c.data.max_length = 128
    c.eval.max_new_tokens = 4
    return c
