"""SNIPS (7 intents) with the paper's Llama-2-7B setting.

tfds has no copy of the 7-intent SNIPS benchmark, so supply it as files with `text` and `intent`
columns (intents: AddToPlaylist, BookRestaurant, GetWeather, PlayMusic, RateBook, SearchCreativeWork,
SearchScreeningEvent):
  --config.data.train_path=snips_train.jsonl --config.data.test_path=snips_test.jsonl
"""

from configs.paper import paper_config


def get_config():
    c = paper_config("snips")
    c.data.source = "file"
    c.data.input_field = "text"
    c.data.output_field = "intent"
    c.data.seed_fraction = 0.01
    c.data.max_length = 128
    c.eval.max_new_tokens = 6
    return c
