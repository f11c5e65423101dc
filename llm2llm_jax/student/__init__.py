"""The student engine: fine-tuning, batching, decoding, scoring, prediction, prompt formats and FLOP
counts."""
