"""SST-2 (2 labels) with the paper's Llama-2-7B setting; data from tfds's huggingface namespace."""

from configs.paper import paper_config


def get_config():
    c = paper_config("sst2")
    c.data.source = "tfds"
    c.data.tfds_name = "huggingface:glue/sst2"
    c.data.tfds_train_split = "train"
    c.data.tfds_test_split = "validation"  # GLUE's test labels are hidden
    c.data.input_field = "sentence"
    c.data.output_field = "label"
    c.data.seed_fraction = 0.0002  # ~13 seed examples, as in the paper's low-data settings
    c.data.max_length = 128
    c.eval.max_new_tokens = 4
    return c
