"""CaseHOLD (5-choice holdings) with the paper's Llama-2-7B setting.

Supply JSONL files whose `input` holds the citing text followed by the five holdings as
"(A) ... (E) ..." lines (llm2llm_jax.data.tasks.casehold_input builds it) and whose `output` is A-E:
  --config.data.train_path=casehold_train.jsonl --config.data.test_path=casehold_test.jsonl
"""

from configs.paper import paper_config


def get_config():
    c = paper_config("casehold")
    c.data.source = "file"
    c.data.seed_fraction = 0.01
    c.data.max_length = 1024
    c.eval.max_new_tokens = 3
    return c
