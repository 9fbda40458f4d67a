"""persona: build persona style-transfer datasets, check them, fine-tune on them, benchmark."""

__version__ = "0.1.0"
