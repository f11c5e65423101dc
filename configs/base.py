"""Shared defaults for every run: the paper's training recipe, data, teacher, filters and mesh.

Task files override what differs; anything can be overridden on the command line with
--config.FIELD=VALUE (e.g. --config.teacher.kind=gemini --config.iterations=5).
"""

import ml_collections


def base_config():
    c = ml_collections.ConfigDict()
    c.job = "llm2llm"
    c.method = "llm2llm"  # llm2llm | finetune (plain fine-tuning baseline) | auggpt | eda
    c.task = "trec"
    c.custom_task = ml_collections.ConfigDict()  # for task='custom': template, cue, labels / answer_regex
    c.iterations = 10
    c.seed = 0
    c.workdir = "runs/default"
    c.progress = True
    c.mesh = (1, -1, 1)  # (data, fsdp, tensor); -1 takes the remaining devices
    # JAX's persistent compilation cache: a rerun or a resumed (preempted) run loads its compiled
    # train and decode steps instead of compiling them again. "auto": jax_compile/ in the asset
    # cache ($LLM2LLM_JAX_CACHE, default ~/.cache/llm2llm_jax); "" turns it off.
    c.compile_cache_dir = "auto"

    c.model = ml_collections.ConfigDict()
    c.model.source = "hf"  # smollm2 | hf | gguf
    c.model.path = ""
    c.model.dtype = "bfloat16"
    c.model.param_dtype = "float32"
    c.model.scan_layers = True
    c.model.remat_policy = "full"
    # Hardware-specific kernels (llm2llm_jax/model/kernels.py): "auto" runs the cpu set on CPUs and the
    # xla set on TPUs and GPUs; "xla" or "cpu" forces one. fused_attention "cudnn" (GPU, bf16) or "xla"
    # trains through jax.nn.dot_product_attention; "off" keeps the kernel set's own attention.
    c.model.kernels = "auto"
    c.model.fused_attention = "off"
    c.model.lora_rank = 0
    c.model.lora_alpha = 16.0

    c.data = ml_collections.ConfigDict()
    c.data.source = "tfds"  # trec_offline | gsm8k_offline | file | tfds
    c.data.train_path = ""
    c.data.test_path = ""
    c.data.format = ""  # jsonl | csv | tsv (default: from the extension)
    c.data.input_field = "input"
    c.data.output_field = "output"
    c.data.tfds_name = ""
    c.data.tfds_train_split = "train"
    c.data.tfds_test_split = "test"
    c.data.tfds_data_dir = ""
    c.data.test_count = 500  # held out when the source has no test split
    c.data.test_limit = 0  # evaluate on the first N test examples (0 = all)
    c.data.split_seed = 0
    c.data.seed_count = 0
    c.data.seed_fraction = 0.01
    c.data.stratify = True
    c.data.max_length = 512
    c.data.truncation = "truncate_prompt"  # or drop

    # The paper: full fine-tuning, 3 epochs, lr 2e-5, cosine, 3% warmup, weight decay 0, batch 128.
    c.train = ml_collections.ConfigDict()
    c.train.learning_rate = 2e-5
    c.train.warmup_ratio = 0.03
    c.train.weight_decay = 0.0
    c.train.epochs = 3
    c.train.batch_size = 128
    c.train.micro_batch_size = 0
    c.train.max_grad_norm = 1.0
    c.train.seq_multiple = 64
    c.train.shuffle_seed = -1  # batch order; -1 derives it from `seed` (the same for every iteration)
    c.train.checkpoint_every = 50  # steps; 0 = only the trained model at the end of each iteration
    c.train.keep_checkpoints = False  # keep each iteration's trained model after it is evaluated

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 32
    c.eval.max_new_tokens = 8

    c.teacher = ml_collections.ConfigDict()
    c.teacher.kind = "gemini"  # gemini | openai | local | pool (a diagnostic: real training rows of the failed class)
    c.teacher.model = ""
    c.teacher.per_example = 1  # new examples per wrong seed example
    c.teacher.same_label = False  # classification: ask for, and keep only, new examples of the wrong one's class
    c.teacher.temperature = 0.7
    c.teacher.top_p = 0.95
    c.teacher.max_output_tokens = 512
    c.teacher.concurrency = 8
    c.teacher.max_attempts = 6
    c.teacher.initial_delay = 1.0
    c.teacher.max_delay = 30.0
    c.teacher.timeout = 60.0
    c.teacher.max_calls = 0  # budget; 0 = unlimited
    c.teacher.max_tokens = 0
    c.teacher.base_url = ""
    c.teacher.api_key_env = ""

    c.filters = ml_collections.ConfigDict()
    c.filters.rouge_threshold = 0.95
    return c
