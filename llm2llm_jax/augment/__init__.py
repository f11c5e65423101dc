"""The augmentation methods as strategies, one module each: llm2llm (the paper's), auggpt and eda (its
baselines), pool (a perfect teacher, for diagnosis) and finetune (nothing added); the judge's verification and
the teacher estimate."""
