"""Where a run's files live, and the per-stage manifest that makes reruns resume safely.

A stage folder holds `manifest.json` (the parameters it was made with) and numbered batch
files. A batch file is written atomically and last, so its existence means "done": a rerun
skips it. A rerun with other parameters is refused (or, with --force, the stage is redone),
never silently mixed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from persona.errors import WorkspaceError
from persona.io import write_json


@dataclass(frozen=True)
class Workspace:
    root: Path
    persona: str

    @property
    def templates_file(self) -> Path:
        return self.root / "templates" / f"{self.persona}.jsonl"

    @property
    def prompts(self) -> Path:
        """`prompts/<stage>.md` here replaces the built-in LLM prompt of that stage."""
        return self.root / "prompts"

    @property
    def generated(self) -> Path:
        return self.root / "generated" / self.persona

    @property
    def answers(self) -> Path:
        return self.generated / "answers"

    @property
    def dialogues(self) -> Path:
        return self.generated / "dialogues"

    @property
    def final(self) -> Path:
        return self.root / "final" / self.persona

    def invalid(self, stage: str) -> Path:
        return self.generated / "invalid" / stage

    @staticmethod
    def batch(folder: Path, index: int) -> Path:
        return folder / f"batch_{index + 1:04d}.jsonl"

    @staticmethod
    def stats(folder: Path, index: int) -> Path:
        return folder / f"batch_{index + 1:04d}.stats.json"

    def prepare(self, folder: Path, stage: str, params: dict, force: bool) -> None:
        """Make `folder` hold only work of `params`: claim it, or refuse a mismatch."""
        manifest = folder / "manifest.json"
        if force:
            for path in (folder, self.invalid(stage)):
                shutil.rmtree(path, ignore_errors=True)
        elif manifest.exists():
            old = json.loads(manifest.read_text(encoding="utf-8")).get("params", {})
            if old != params:
                diff = ", ".join(f"{k}: {old.get(k)!r} -> {v!r}" for k, v in params.items()
                                 if old.get(k) != v)
                raise WorkspaceError(
                    f"holds {stage} output made with other settings ({diff}); rerun with "
                    "--force to redo the stage, or use another --workspace", file=str(folder))
        elif folder.exists() and any(folder.glob("batch_*.jsonl")):
            raise WorkspaceError(f"holds {stage} batches without a manifest; rerun with --force",
                                 file=str(folder))
        folder.mkdir(parents=True, exist_ok=True)
        write_json(manifest, {"stage": stage, "params": params})

    @staticmethod
    def fingerprint(folder: Path) -> dict:
        manifest = folder / "manifest.json"
        if not manifest.exists():
            return {}
        return json.loads(manifest.read_text(encoding="utf-8")).get("params", {})
