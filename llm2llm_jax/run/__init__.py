"""The run: the LLM2LLM controller and what it needs around it (stages and resume, the run directory and its
lock, result reuse, the init policy, hooks, timing, TensorBoard, reports, comparisons and their
statistics)."""
