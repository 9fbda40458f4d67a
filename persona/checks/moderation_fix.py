"""`persona moderate --fix drop|regenerate`: remove or rewrite what the moderator flagged.

regenerate asks a rewriter for a new version of every flagged example, moderates the new
versions, and asks again for those still flagged, up to `rounds`; what is still flagged after
the last round is dropped (and counted). Two rewriters:
- offline (a final/<persona>/ folder): another template and other values through the offline
  generation provider, the same style and slip as before, a new question to match; a new
  answer that duplicates one in the folder (merge's measure) is not taken;
- LLM (any chat JSONL): the answer rewritten by an OpenAI-compatible model, told to keep the
  persona, style and satire and to drop what was flagged (persona/prompts/rewrite.md).
Nothing is lost: every original and its replacement (or null when dropped) is appended to
moderation/replaced.jsonl, and moderation/flagged.jsonl keeps the originals of this run.
On a final/ folder, all.jsonl, the splits, meta.jsonl, report.json and DATASET_CARD.md are
rewritten together; an example keeps its split and its id. On a file, the result goes to
moderation/fixed.jsonl and the input is left as it was.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from persona.checks.moderation import Screened, check_examples, mask_example
from persona.errors import InputError
from persona.io import atomic_writer, dumps, iter_jsonl

MODES = ("drop", "regenerate")


def fix(screened: Screened, moderator, threshold: float | None, *, mode: str, rounds: int,
        out_dir: Path, final_dir: Path | None, rewriter=None) -> dict:
    """Apply `mode` to the flagged examples of `screened`; write the fixed files; return what
    was done (for report.json)."""
    flagged = {line: r.categories for line, r in screened.results.items()}
    replaced: dict[int, dict] = {}
    history: list[dict] = []
    if mode == "regenerate" and flagged:
        objs = dict(screened.examples)
        todo = dict(flagged)
        for rnd in range(1, rounds + 1):
            if not todo:
                break
            fresh = rewriter.rewrite({line: objs[line] for line in todo}, todo, rnd)
            check = check_examples(sorted(fresh.items()), moderator, threshold)
            history.append({"round": rnd, "rewritten": len(fresh),
                            "still_flagged": len(check.results)})
            for line, obj in fresh.items():
                if line in check.results:
                    todo[line] = check.results[line].categories
                else:
                    replaced[line] = obj
                    todo.pop(line)
    dropped = sorted(set(flagged) - set(replaced))
    _append_replaced(out_dir, screened, flagged, replaced)
    if final_dir is not None:
        _rewrite_final(final_dir, screened, replaced, set(dropped), rewriter)
    else:
        _write_fixed(out_dir / "fixed.jsonl", screened, replaced, set(dropped))
    return {"mode": mode, "rounds": history, "flagged": len(flagged),
            "regenerated": len(replaced), "dropped": len(dropped), "dropped_lines": dropped,
            "output": str(final_dir if final_dir is not None else out_dir / "fixed.jsonl")}


def _append_replaced(out_dir: Path, s: Screened, flagged: dict, replaced: dict) -> None:
    """Append-only: survives a later moderate run that finds the fixed files clean."""
    objs = dict(s.examples)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "replaced.jsonl", "a", encoding="utf-8") as fh:
        for line, cats in sorted(flagged.items()):
            new = replaced.get(line)
            fh.write(dumps({"line": line, "categories": cats,
                            "original": mask_example(objs[line]),
                            "replacement": None if new is None else mask_example(new)}) + "\n")


def _write_fixed(path: Path, s: Screened, replaced: dict, dropped: set) -> None:
    with atomic_writer(path) as fh:
        for line, obj in s.examples:
            if line not in dropped:
                fh.write(dumps(mask_example(replaced.get(line, obj))) + "\n")


def _rewrite_final(final: Path, s: Screened, replaced: dict, dropped: set, rewriter) -> None:
    """all.jsonl, the splits and meta.jsonl in one pass: line i of all.jsonl is meta line i."""
    metas = [m for _, m in iter_jsonl(final / "meta.jsonl")]
    if len(metas) != len(s.examples):
        raise InputError(f"meta.jsonl has {len(metas)} lines for {len(s.examples)} examples "
                         "in all.jsonl; the folder was edited by hand", file=str(final))
    new_meta = getattr(rewriter, "new_meta", {}) if rewriter is not None else {}
    names = ("train", "val", "test")
    with (atomic_writer(final / "all.jsonl") as all_out,
          atomic_writer(final / "meta.jsonl") as meta_out,
          atomic_writer(final / "train.jsonl") as train,
          atomic_writer(final / "val.jsonl") as val,
          atomic_writer(final / "test.jsonl") as test):
        outs = dict(zip(names, (train, val, test), strict=True))
        for (line, obj), meta in zip(s.examples, metas, strict=True):
            if line in dropped:
                continue
            obj = mask_example(replaced.get(line, obj))
            if line in replaced:
                meta = {**meta, **new_meta.get(line, {}), "moderation": "regenerated"}
            text = dumps(obj) + "\n"
            all_out.write(text)
            outs[meta["split"]].write(text)
            meta_out.write(dumps(meta) + "\n")


def refresh_report(final: Path, spec, fix_info: dict) -> None:
    """report.json and DATASET_CARD.md measured again from the rewritten folder."""
    from persona import report as report_mod
    from persona.workspace import Workspace

    old = json.loads((final / "report.json").read_text(encoding="utf-8")) \
        if (final / "report.json").exists() else {}
    stages = old.get("stages", {"merge": {"removed": 0}})
    stages["moderation"] = {k: fix_info[k] for k in ("mode", "flagged", "regenerated",
                                                     "dropped")}
    report_mod.write(spec, Workspace(final.parent.parent, spec.id), stages)


# -- rewriters -----------------------------------------------------------------------------

TEMPLATE_TRIES = 8  # templates tried per flagged answer and round


class OfflineRewriter:
    """Another template and other values for the same slot (style, slip kept), and a new
    question for the new answer: the offline generation provider does the writing."""

    name = "offline"

    def __init__(self, final: Path, spec, seed: int = 42):
        from persona.workspace import Workspace

        ws = Workspace(final.parent.parent, spec.id)
        if not ws.templates_file.is_file():
            raise InputError("offline --fix regenerate needs the template bank of the run "
                             f"that made this folder ({ws.templates_file})",
                             file=str(ws.templates_file))
        self.spec, self.seed = spec, seed
        self.templates = [t for _, t in iter_jsonl(ws.templates_file)]
        self.metas = {i: m for i, (_, m) in enumerate(iter_jsonl(final / "meta.jsonl"), 1)}
        self.new_meta: dict[int, dict] = {}
        self.final = final
        self._index = None  # the answers that stay, for the duplicate check (built lazily)

    def _dedup(self, flagged: dict):
        """An index of every answer not being rewritten: a new answer that duplicates one
        (exactly or nearly, as merge measures it) is not taken, so the folder stays
        deduplicated."""
        from persona.dedup import DedupIndex

        if self._index is None:
            self._index = DedupIndex(self.spec.persona.signature)
            for i, (_, ex) in enumerate(iter_jsonl(self.final / "all.jsonl"), 1):
                if i not in flagged:
                    self._index.offer(ex["messages"][-1]["content"])
        return self._index

    def rewrite(self, objs: dict[int, dict], flagged: dict, rnd: int) -> dict[int, dict]:
        from persona.providers.base import (
            Failure,
            FillRequest,
            QuestionRequest,
            TemplateRecord,
        )
        from persona.providers.offline import OfflineProvider
        from persona.stages.merge import chat_example

        prov, out = OfflineProvider(), {}
        for line in objs:
            meta = self.metas[line]
            rng = random.Random(f"{self.seed}:moderate:{line}:{rnd}")
            pool = [t for t in self.templates if t["id"] != meta["template_id"]] or \
                self.templates
            for attempt in range(TEMPLATE_TRIES):  # a template may fit no slip, no clash rule
                t = rng.choice(pool)
                req = FillRequest(index=line, id=meta["answer_id"], style=meta["style"],
                                  slip=bool(meta.get("slip")), attempt=1000 + rnd * 100 + attempt,
                                  template=TemplateRecord(t["id"], t["text"], t["placeholders"],
                                                          t["forms"]))
                got = prov.fill(self.spec, [req], self.seed)[0]
                if isinstance(got, Failure):  # no slip rule fits this template: no slip then
                    req = FillRequest(**{**req.__dict__, "slip": False})
                    got = prov.fill(self.spec, [req], self.seed)[0]
                if isinstance(got, Failure):
                    continue
                q = prov.ask(self.spec, [QuestionRequest(line, {"values": got.values},
                                                         req.attempt)], self.seed)[0]
                if isinstance(q, Failure):
                    continue
                if self._dedup(flagged).offer(got.text).kind is not None:
                    continue  # a duplicate: try another template
                out[line] = chat_example(self.spec.persona.system_prompt, q, got.text)
                self.new_meta[line] = {"template_id": t["id"], "values": got.values,
                                       "slip": got.slip}
                break  # else it stays flagged: the next round tries again, dropped if none
        return out


class LLMRewriter:
    """The flagged answer rewritten by a chat model (persona/prompts/rewrite.md)."""

    name = "llm"

    def __init__(self, *, base_url: str | None, model: str, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, rpm: float | None = None, timeout: float = 60.0,
                 cache_dir: Path | None = None):
        from persona.moderators.client import Client
        from persona.providers.openai_compat import check_model

        self.model = model
        self.warnings = check_model(model, base_url)  # a shut-down model: one line, at once
        self.client = Client(base_url=base_url, api_key_env=api_key_env,
                             concurrency=concurrency, rpm=rpm, timeout=timeout,
                             cache_dir=cache_dir, kind="rewrite", model=model)

    def rewrite(self, objs: dict[int, dict], flagged: dict, rnd: int) -> dict[int, dict]:
        from persona.moderators.client import Job, input_key

        jobs, keys = [], {}
        objs = {line: mask_example(obj) for line, obj in objs.items()}  # no PII to the LLM
        for line, obj in objs.items():
            body = {"model": self.model, "temperature": 0.7, "max_tokens": 800,
                    "messages": rewrite_messages(obj, flagged[line], rnd)}
            keys[line] = input_key(self.model, "rewrite", json.dumps(body, sort_keys=True))
            if self.client.cached(keys[line]) is None:
                jobs.append(Job("/chat/completions", body, [keys[line]], _parse_rewrite))
        # A malformed rewrite is not asked again with the same body: the example stays
        # flagged and the next round asks with its new attempt number.
        self.client.run(jobs, strict=False, reasks=0)
        out = {}
        for line, obj in objs.items():
            got = self.client.cached(keys[line])
            if got is None:
                continue
            text = got["text"]
            new = json.loads(json.dumps(obj))
            i = _answer_index(new)
            new["messages"][i]["content"] = _keep_signature(obj["messages"][i]["content"], text)
            out[line] = new
        return out


def rewrite_messages(obj: dict, categories: list[str], rnd: int) -> list[dict]:
    from persona import prompts

    msgs = obj["messages"]
    system = next((m["content"] for m in msgs if m.get("role") == "system"),
                  "You rewrite answers of a dataset.")
    question = next((m["content"] for m in msgs if m.get("role") == "user"), "")
    task = {"task": "rewrite", "question": question,
            "answer": msgs[_answer_index(obj)]["content"], "flagged": categories,
            "attempt": rnd}
    p = prompts.load("rewrite")
    variables = {"system": system, "categories": ", ".join(categories),
                 "task": json.dumps(task, ensure_ascii=False, indent=1)}
    return [{"role": "system", "content": prompts.render(p["system"], variables)},
            {"role": "user", "content": prompts.render(p["user"], variables)}]


def _answer_index(obj: dict) -> int:
    """The last assistant message: what the moderator judged and the model is trained on."""
    msgs = obj["messages"]
    return max(i for i, m in enumerate(msgs) if m.get("role") == "assistant")


def _parse_rewrite(resp) -> list[dict] | None:
    try:
        content = resp["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        return None
    m = re.search(r"\{.*\}", content, re.S)
    try:
        text = json.loads(m.group(0)).get("text") if m else None
    except json.JSONDecodeError:
        return None
    return [{"text": text.strip()}] if isinstance(text, str) and text.strip() else None


def _keep_signature(original: str, new: str) -> str:
    """The original's signature (its last line after a blank line) stays the last line."""
    _, sep, sig = original.rpartition("\n\n")
    if not sep or "\n" in sig or new.rstrip().endswith(sig):
        return new
    return f"{new.rstrip()}\n\n{sig}"


def spec_for(final: Path, persona: str | None):
    """The spec that made a final/ folder: --persona, else the id in its report.json."""
    from persona.spec import load_spec

    if persona is None:
        report = final / "report.json"
        if not report.is_file():
            raise InputError("no report.json to tell the persona: pass --persona",
                             file=str(final))
        persona = json.loads(report.read_text(encoding="utf-8")).get("persona")
    spec = load_spec(persona)
    if spec.id != final.name:
        raise InputError(f"folder is not final/{spec.id}/ of persona {spec.id!r}; pass the "
                         "--persona that made it", file=str(final))
    return spec


