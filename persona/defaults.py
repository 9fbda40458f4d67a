"""Defaults the CLI shows in its help, apart from the modules that use them, so that building
the command line imports no stage, numpy or tokenizer (every command starts faster)."""

DEFAULT_SEED = 42
DEFAULT_COUNT = 3000
BATCH_SIZE = 300
PER_REQUEST = 8  # items per LLM request (fill, questions): docs/benchmarks.md "Issue 19"
