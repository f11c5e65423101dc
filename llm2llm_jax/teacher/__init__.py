"""The teacher: its interface and budget, one module per backend (gemini, openai_chat, local), batch jobs, the
prompts and the reading of replies, the filters for what it writes, the request cache, and the factory."""
