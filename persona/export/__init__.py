"""`persona export`: a finished dataset (final/<persona>/) in the shape another trainer wants.

Two passes over every split: the first converts each conversation and checks the row against
the target format's own rules (and the split against its limits), the second writes. So a
dataset that breaks a rule is refused with file, line and rule before a byte is written, and
memory stays flat however large the dataset is. Formats: vertex.py, sharegpt.py, alpaca.py,
hf.py; each knows how to convert, what it checks, and where the system prompt goes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from persona.errors import InputError, PersonaError
from persona.export import alpaca, hf, sharegpt, vertex
from persona.export.conversation import Problem, fold_system, read
from persona.io import dumps, write_json, write_text

FORMATS: dict[str, ModuleType] = {"vertex": vertex, "sharegpt": sharegpt, "alpaca": alpaca,
                                  "hf": hf}
SPLITS = ("train", "val", "test")  # the files of a final/<persona>/ folder, in this order


class ExportRefused(PersonaError):
    """The dataset breaks a rule of the target format: nothing was written."""

    exit_code = 1


@dataclass
class ExportResult:
    format: str
    out: Path
    files: dict[str, Path] = field(default_factory=dict)  # split -> written file
    examples: dict[str, int] = field(default_factory=dict)
    system: str = ""  # where the system prompt went, in words
    extra: list[Path] = field(default_factory=list)  # dataset_info.json, README.md


def export(final_dir: Path, fmt: str, out: Path | None = None, *,
           fold: bool = False) -> ExportResult:
    module = FORMATS[fmt]
    final_dir = Path(final_dir)
    splits = _splits(final_dir)
    out = Path(out) if out else final_dir / "export" / fmt
    counter = _token_counter() if fmt == "vertex" else None
    keys: dict[str, set[str]] = {}
    counts = {}
    problems = _Problems()
    for split, path in splits.items():  # pass 1: check everything, write nothing
        n = nbytes = 0
        keys[split] = set()
        for lineno, row, found in _rows(module, path, fold, counter, check=True):
            problems.add(path, lineno, found)
            n += 1
            nbytes += len(dumps(row).encode()) + 1
            keys[split] |= set(row)
        if n == 0:
            raise InputError("empty file, expected chat JSONL (one conversation per line)",
                             file=str(path))
        counts[split] = n
        problems.add(path, None, module.check_split(split, n, nbytes))
    if problems.first:
        raise problems.refusal(module.NAME)
    result = ExportResult(fmt, out, system=_system_note(module, fold))
    for split, path in splits.items():  # pass 2: write
        rows = (row for _, row, _ in _rows(module, path, fold, counter, check=False))
        result.files[split], result.examples[split] = _write(module, out, final_dir.name,
                                                             split, rows)
    result.extra = _write_extra(module, out, final_dir, result, keys)
    return result


def _splits(final_dir: Path) -> dict[str, Path]:
    if not final_dir.exists():
        raise InputError("no such folder", file=str(final_dir))
    if not final_dir.is_dir():
        raise InputError("not a folder; give a finished dataset folder (final/<persona>) "
                         "holding train.jsonl, val.jsonl, test.jsonl", file=str(final_dir))
    found = {s: final_dir / f"{s}.jsonl" for s in SPLITS if (final_dir / f"{s}.jsonl").exists()}
    if "train" not in found:
        raise InputError("no train.jsonl here; give a finished dataset folder "
                         "(final/<persona>, made by `persona run`)", file=str(final_dir))
    return found


def _rows(module: ModuleType, path: Path, fold: bool, counter, *, check: bool
          ) -> Iterator[tuple[int, dict, list[Problem]]]:
    """(line, the format's row, the rules it breaks) for every line of `path`;
    `check=False` (the writing pass) skips the checks the first pass made."""
    for lineno, conv in read(path):
        if isinstance(conv, Problem):  # not a conversation at all: bad input, not a rule
            raise InputError(conv.rule, file=str(path), line=lineno, field=conv.field)
        row = module.convert(fold_system(conv) if fold else conv)
        found = module.check(row, counter) if check else []
        yield lineno, module.finish(row), found


class _Problems:
    """The first problem and how many there are (a broken dataset may have millions)."""

    def __init__(self):
        self.first: tuple[Path, int | None, Problem] | None = None
        self.count = 0
        self.lines = 0

    def add(self, path: Path, line: int | None, found: list[Problem]) -> None:
        if found:
            self.first = self.first or (path, line, found[0])
            self.count += len(found)
            self.lines += 1

    def refusal(self, name: str) -> ExportRefused:
        path, line, first = self.first
        more = f" (+{self.count - 1} more in {self.lines} line(s))" if self.count > 1 else ""
        return ExportRefused(f"{name} rule: {first.rule}{more}; nothing written",
                             file=str(path), line=line, field=first.field)


def _write(module: ModuleType, out: Path, name: str, split: str, rows) -> tuple[Path, int]:
    from persona.export.files import write_jsonl, write_parquet

    if module is hf:
        path = out / "data" / f"{hf.SPLIT_NAMES[split]}.parquet"
        return path, write_parquet(path, rows)
    if module is vertex:
        path = out / vertex.SPLIT_FILES[split]
    else:
        path = out / f"{name}_{_split_name(split)}.jsonl"
    return path, write_jsonl(path, rows)


def _split_name(split: str) -> str:
    return hf.SPLIT_NAMES[split]


def _write_extra(module, out: Path, final_dir: Path, result: ExportResult,
                 keys: dict[str, set[str]]) -> list[Path]:
    if module is hf:
        card_file = final_dir / "DATASET_CARD.md"
        card = card_file.read_text(encoding="utf-8") if card_file.is_file() else None
        write_text(out / "README.md", hf.card(final_dir.name, result.examples, card))
        return [out / "README.md"]
    if module in (sharegpt, alpaca):
        info = {f"{final_dir.name}_{_split_name(s)}": module.dataset_info(p.name, keys[s])
                for s, p in result.files.items()}
        write_json(out / "dataset_info.json", info)
        return [out / "dataset_info.json"]
    return []


def _system_note(module: ModuleType, fold: bool) -> str:
    if fold:
        return "folded into the first user turn (--fold-system)"
    return f"carried in {module.SYSTEM_PLACE}"


def _token_counter():
    from persona.checks import tokens

    encoding = tokens.get_encoding(tokens.APPROXIMATE_ENCODING)
    return lambda text: tokens.count_text(text, encoding)

