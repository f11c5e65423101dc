"""Shared defaults for every run: the paper's training recipe, data, teacher, filters and mesh.

Task files override what differs; anything can be overridden on the command line with
--config.FIELD=VALUE (e.g. --config.teacher.kind=gemini --config.iterations=5). The `train` and
`teacher` sections start from the defaults of the dataclasses they build (TrainHParams,
TeacherSettings), so there is one set of defaults; `llm2llm_jax.settings.validate` checks every field
before a run starts.
"""

import ml_collections

from llm2llm_jax.common.sections import defaults_of
from llm2llm_jax.student.recipe import TrainHParams
from llm2llm_jax.teacher.base import TeacherSettings


def base_config():
    c = ml_collections.ConfigDict()
    c.job = "llm2llm"
    # llm2llm | finetune (plain fine-tuning) | auggpt | eda | pool (real rows of the failed class: a
    # perfect teacher, for diagnosis); see llm2llm_jax/augment/
    c.method = "llm2llm"
    c.task = "trec"
    # task='custom': cue and labels (comma-separated; + verbalizers) or answer_regex, e.g.
    # --config.task=custom --config.custom_task.labels=a,b,c --config.custom_task.cue=Intent:
    c.custom_task = ml_collections.ConfigDict(
        dict(
            name="custom",
            cue="",
            labels="",
            verbalizers="",
            template="{input}",
            instruction="",
            answer_regex="",
            numeric=False,
            # What the teacher knows of the task, as the built-in tasks have it: a description, what an
            # input of each class does ("HUM=asks for a person; LOC=asks for a place"), and in `file` (YAML
            # or JSON, any of these fields) a worked example: two {input, output}, one shown, one new.
            description="",
            class_meanings="",
            file="",
        )
    )
    c.iterations = 10
    c.seed = 0
    c.workdir = "runs/default"
    c.progress = True
    c.tensorboard = True  # scalars under workdir/tensorboard (llm2llm_jax/run/board.py)
    c.mesh = (1, -1, 1)  # (data, fsdp, tensor); -1 takes the remaining devices
    # JAX's persistent compilation cache: a rerun or a resumed (preempted) run loads its compiled
    # train and decode steps instead of compiling them again. "auto": jax_compile/ in the asset
    # cache ($LLM2LLM_JAX_CACHE, default ~/.cache/llm2llm_jax); "" turns it off.
    c.compile_cache_dir = "auto"
    # XLA's flags for NVIDIA GPUs (llm2llm_jax/common/gpu_flags.py), set by the launcher before JAX starts:
    # "auto" on a machine with an NVIDIA GPU, "on", or "off". Flags already in XLA_FLAGS keep their values.
    c.gpu_xla_flags = "auto"

    c.model = ml_collections.ConfigDict()
    c.model.source = "hf"  # smollm2 | hf | gguf
    c.model.path = ""
    c.model.dtype = (
        "bfloat16"  # compute dtype: bfloat16, float32, or auto (bf16 where the hardware multiplies it)
    )
    c.model.param_dtype = "float32"
    c.model.scan_layers = True
    c.model.remat_policy = "full"
    # Hardware-specific kernels (llm2llm_jax/model/kernels.py): "auto" runs the cpu set on CPUs and the
    # xla set on TPUs and GPUs; "xla" or "cpu" forces one. fused_attention (xla set only): "cudnn" (GPU,
    # bf16) or "xla" trains through jax.nn.dot_product_attention, by sequence lengths on right-padded
    # batches; "blocked" attends in causal query blocks with a flash-style backward, never building the
    # whole score matrix; "off" keeps the kernel set's own attention; "auto" is cudnn on NVIDIA GPUs where
    # cuDNN takes the model (else blocked), and off on CPUs and TPUs.
    c.model.kernels = "auto"
    c.model.fused_attention = "auto"
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
    # A dev split drawn from the training pool beside the seed set (never trained on): each iteration is
    # evaluated on it, and the run keeps the iteration with the best dev accuracy. 0 and 0.0: none (the run
    # keeps its last iteration).
    c.data.dev_count = 0
    c.data.dev_fraction = 0.0
    c.data.stratify = True
    c.data.max_length = 512
    c.data.truncation = "truncate_prompt"  # or drop
    # plain: instruction, input and cue as text; chat: the same as the user turn of the tokenizer's chat
    # template, the answer as the assistant turn; auto: chat when the tokenizer has a template
    c.data.prompt_format = "plain"

    # The paper's recipe (TrainHParams): full fine-tuning, 3 epochs, lr 2e-5, cosine, 3% warmup, batch 128.
    c.train = ml_collections.ConfigDict(defaults_of(TrainHParams, exclude=("max_length", "seed")))
    c.train.shuffle_seed = -1  # batch order; -1 derives it from `seed` (the same for every iteration)
    c.train.checkpoint_every = 50  # steps; 0 = only the trained model at the end of each iteration
    # ...and no sooner than this many minutes after the fine-tune began or its last checkpoint: what a
    # preemption can lose, without paying for a whole state on disk every few seconds (0: steps alone)
    c.train.checkpoint_minutes = 10.0
    c.train.keep_checkpoints = False  # keep each iteration's trained model after it is evaluated
    # base: every iteration fine-tunes the base weights (the paper's); previous: it continues the previous
    # iteration's model (fresh optimizer and schedule), the paper's ablation
    c.train.init = "base"

    # Which examples an iteration grows from (the paper's ablations). parents: 'wrong' (LLM2LLM) or 'all'
    # (every candidate parent, right or wrong). from_augmented: False (parents come from the seed set only,
    # the paper's) or True (kept examples can be parents too; the student is then evaluated on them as well).
    # max_parents: at most this many parents per iteration ('14,4,4'; '' no cap), a random subset; the
    # comparison job sets it to give the baselines LLM2LLM's teacher budget.
    c.augment = ml_collections.ConfigDict(dict(parents="wrong", from_augmented=False, max_parents=""))

    # job="compare" (python launch/compare.py): a run per (method, seed) under workdir, and the comparison
    # (llm2llm_jax/run/compare.py). equal_budget: AugGPT and EDA get as many parents per iteration as LLM2LLM.
    c.compare = ml_collections.ConfigDict(dict(methods="finetune,llm2llm", seeds="0,1,2", equal_budget=True))
    # A directory of fine-tune + evaluation results shared between runs (the comparison job sets it): a run
    # reads a result with its key from there instead of computing it, and adds the ones it computes.
    c.shared_results = ""

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 32
    c.eval.max_new_tokens = 8
    # generate: greedy decoding, the answer parsed by the task; score (classification only): the label whose
    # answer the model finds most likely (llm2llm_jax/student/scoring.py), one prompt pass, never unparseable
    c.eval.mode = "generate"

    # How to reach the teacher (TeacherSettings: kind gemini | openai | local, model, sampling, retries,
    # budget max_calls / max_tokens with 0 = unlimited) and what to ask it for.
    c.teacher = ml_collections.ConfigDict(defaults_of(TeacherSettings))
    c.teacher.per_example = 1  # new examples per chosen seed example
    # How the teacher is asked (llm2llm_jax/teacher/prompts.py): 'example' (whole examples: input and output),
    # 'label_conditioned' (classification: new inputs of the failed example's class, which is attached to
    # them), or 'auto' (label_conditioned for classification tasks, example otherwise).
    c.teacher.mode = "auto"
    c.teacher.requests_per_example = 1  # per_example split over this many requests, each with its own seed
    c.teacher.same_label = (
        False  # example mode: ask for, and keep only, new examples of the wrong one's class
    )
    c.teacher.max_empty_rounds = 2  # stop after this many rounds in a row that keep no new example

    # What a run delivers (llm2llm_jax/run/deliver.py): the selected iteration's student in student/, an HF
    # directory (and the PEFT adapter of a LoRA student) with a model card. dtype: of the exported weights (''
    # is model.param_dtype); gguf: also a GGUF file for llama.cpp, of gguf_type f16, bf16 or q8_0.
    c.export = ml_collections.ConfigDict(dict(student=True, dtype="", gguf=False, gguf_type="f16"))

    c.filters = ml_collections.ConfigDict()
    c.filters.rouge_threshold = 0.95
    # judge: a second pass labels (or solves) each new example without the intended answer, and drops it as
    # `unverified` when it disagrees; by the teacher's backend, with filters.judge_model ('' = the teacher's
    # own)
    c.filters.verify = "none"
    c.filters.judge_model = ""
    return c
