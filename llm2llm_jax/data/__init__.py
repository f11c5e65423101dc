"""Data: tasks (everything a task knows, the teacher's class descriptions and worked examples included),
sources (local files, tfds, public sets packaged offline), seed sampling, test-set leakage, per-iteration
shards and the augmented dataset's export."""
