"""The demo's untrained tiny base: one tokenizer for both personas' texts, random weights.

    python -m persona.bench.tinybase OUT_FOLDER final/neutral final/babis

The neutral base is then trained from it (`persona finetune --merge`) and the persona adapter on
top of that; one tokenizer trained on both datasets keeps both sides' text equally cheap to
write, so "after" differs from "before" by what was learned, not by what can be spelled.
"""

from __future__ import annotations

import sys
from pathlib import Path


def build(folder: Path, datasets: list[Path], seed: int = 42) -> Path:
    from persona.finetune import quiet_libraries, require_train_deps
    from persona.finetune.data import load_chat_data
    from persona.finetune.tiny import build_tiny

    require_train_deps()
    quiet_libraries()
    texts: list[str] = []
    for d in datasets:
        texts += load_chat_data(Path(d), seed=seed).texts()
    return build_tiny("tiny", texts, Path(folder), seed=seed)


if __name__ == "__main__":  # pragma: no cover - used by scripts/demo_bench.sh
    if len(sys.argv) < 3:
        sys.exit("usage: python -m persona.bench.tinybase OUT_FOLDER DATASET [DATASET ...]")
    print(build(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]))  # noqa: T201
