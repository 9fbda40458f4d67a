"""What was measured on a finished dataset: `final/<persona>/report.json` and DATASET_CARD.md.

Every figure is read back from the files in `final/` (not from what the generator intended),
so the report is also a check: unresolved placeholders must be 0, every answer signed.
No timestamps or timings go into these files: two runs with one seed give the same bytes.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np

from persona import diversity
from persona import text as T
from persona.io import iter_jsonl, write_json, write_text
from persona.spec import PersonaSpec
from persona.workspace import Workspace

TOKENIZER = "o200k_base"  # gpt-4o / gpt-4.1 family: what the dataset would be billed with


def _dist(lengths: list[int]) -> dict:
    if not lengths:
        return {"min": 0, "p50": 0, "mean": 0.0, "p95": 0, "max": 0}
    a = np.asarray(lengths)
    return {"min": int(a.min()), "p50": int(np.percentile(a, 50)),
            "mean": round(float(a.mean()), 1), "p95": int(np.percentile(a, 95)),
            "max": int(a.max())}


def _encoder():
    from persona.checks.tokens import get_encoding

    return get_encoding(TOKENIZER)


def token_lengths(enc, path) -> tuple[list[int], list[int]]:
    """The question's and the answer's token counts of every example of a chat JSONL file.
    A plain loop: encode_ordinary_batch's thread pool costs more than it saves on short
    texts (0.14 s vs 0.06 s for 6,000 texts on 2 cores)."""
    q_len: list[int] = []
    a_len: list[int] = []
    for _, ex in iter_jsonl(path):
        msgs = {m["role"]: m["content"] for m in ex["messages"]}
        q_len.append(len(enc.encode_ordinary(msgs["user"])))
        a_len.append(len(enc.encode_ordinary(msgs["assistant"])))
    return q_len, a_len


def measure(spec: PersonaSpec, ws: Workspace, tokenizer=None) -> dict:
    """`tokenizer`: a parallel.Warm that loaded the tokenizer while the caller did
    something else (the offline run); it counts the tokens in its process. Without one they
    are counted here, after the rest (no fork while another thread may be loading the
    tokenizer: the LLM path warms it in a thread). The sentence shapes and copy ratios run in
    a Later beside the rest."""
    from persona.parallel import Later

    tokens = (tokenizer.later(token_lengths, ws.final / "all.jsonl")
              if tokenizer is not None else None)
    side = Later(side_figures, spec, ws)  # on the other core, beside what follows
    signature = spec.persona.signature
    n = signed = unresolved = exact_dups = 0
    unresolved_examples: list[str] = []
    seen: set[bytes] = set()
    div = diversity.Counter_(signature, spec.journalist.labels)
    question_hashes: list[int] = []
    questions: list[str] = []  # for the leak check with the journalist's address aside
    for _, ex in iter_jsonl(ws.final / "all.jsonl"):
        msgs = {m["role"]: m["content"] for m in ex["messages"]}
        q, a = msgs["user"], msgs["assistant"]
        n += 1
        signed += T.is_signed(a, signature)
        left = T.unresolved(q) + T.unresolved(a)
        if left:
            unresolved += 1
            unresolved_examples = (unresolved_examples + left)[:5]
        key = hashlib.blake2b(f"{q}\x00{a}".encode(), digest_size=12).digest()
        exact_dups += key in seen
        seen.add(key)
        div.add(q, a)
        question_hashes.append(hash(q))
        questions.append(q)

    styles, slips, splits, templates = Counter(), Counter(), Counter(), Counter()
    values = {name: Counter() for name in spec.placeholders}
    topic_key = spec.journalist.match[0] if spec.journalist.match else None
    metas = []  # the few fields the leakage check needs, not whole records
    split_q: dict[str, list[int]] = {"train": [], "test": []}
    split_i: dict[str, list[int]] = {"train": [], "test": []}
    for i, (_, m) in enumerate(iter_jsonl(ws.final / "meta.jsonl")):
        topic = {k: v for k, v in m["values"].items() if k == topic_key}
        metas.append({"split": m["split"], "template_id": m["template_id"], "values": topic})
        if m["split"] in split_q and i < len(question_hashes):
            split_q[m["split"]].append(question_hashes[i])
            split_i[m["split"]].append(i)
        styles[m["style"]] += 1
        splits[m["split"]] += 1
        templates[m["template_id"]] += 1
        if m["slip"]:
            slips[m["slip"]["kind"]] += 1
        for name, key in m["values"].items():
            values[name][key] += 1

    pct = (lambda k: round(100.0 * k / n, 2)) if n else (lambda k: 0.0)  # noqa: E731
    uses = list(templates.values())
    diversity_figures = div.result()
    diversity_figures["leakage"] = diversity.leakage(split_q["train"], split_q["test"], metas,
                                                      topic_key)
    diversity_figures["leakage"]["test_questions_in_train_loose"] = loose_leaks(
        spec, [questions[i] for i in split_i["train"]], [questions[i] for i in split_i["test"]])
    diversity_figures["sentence_shapes"], copies = side.get()
    q_len, a_len = (tokens.get() if tokens is not None
                    else token_lengths(_encoder(), ws.final / "all.jsonl"))
    return {
        "persona": spec.id,
        "count": n,
        "splits": {s: splits.get(s, 0) for s in ("train", "val", "test")},
        "style_mix": {s: {"count": styles.get(s, 0), "percent": pct(styles.get(s, 0)),
                          "target_percent": round(100 * spec.style.mix[s], 2)}
                      for s in spec.styles},
        "slips": {"count": sum(slips.values()), "percent": pct(sum(slips.values())),
                  "target_percent": round(100 * spec.style.slip_rate, 2),
                  "by_kind": dict(sorted(slips.items()))},
        "templates": {"used": len(templates), "uses_min": min(uses, default=0),
                      "uses_max": max(uses, default=0)},
        "values": {name: {"used": len(c), "available": len(spec.placeholders[name].values),
                          "top": [[k, v] for k, v in c.most_common(3)]}
                   for name, c in values.items()},
        "tokens": {"tokenizer": TOKENIZER, "question": _dist(q_len), "answer": _dist(a_len)},
        "unresolved_placeholders": unresolved,
        "unresolved_examples": unresolved_examples,
        "signature": {"text": signature, "signed": signed, "percent": pct(signed)},
        "exact_duplicates": exact_dups,
        "diversity": diversity_figures,
        **({"copy_ratio": copies} if copies else {}),
    }


def loose_leaks(spec: PersonaSpec, train: list[str], test: list[str]) -> int:
    """Test questions that a train question repeats with the journalist's address or a lead
    sentence aside ("Pane předsedo, X?" for "Pane Babiši, X?"): the run-wide index rejects
    those for an LLM; the offline grammar's address alternatives make some by design."""
    from persona.stages.questions import QuestionIndex

    index = QuestionIndex(spec)
    for q in train:
        index.add(q)
    return sum(q in index for q in test)


def value_words(spec: PersonaSpec) -> frozenset[str]:
    """Every word of every value's forms: masked out of a sentence's shape."""
    return frozenset(w for ph in spec.placeholders.values() for value in ph.values
                     for k, form in value.items() if k != ph.agreement
                     for w in diversity.words(form))


def side_figures(spec: PersonaSpec, ws: Workspace) -> tuple[dict, dict | None]:
    """The answers' sentence shapes and copy ratios, figures that need only final/ and so
    run on another core while `measure` does the rest."""
    shapes = diversity.SentenceShapes(value_words(spec))
    signature = spec.persona.signature
    for _, ex in iter_jsonl(ws.final / "all.jsonl"):
        shapes.add(diversity.strip_signature(ex["messages"][-1]["content"], signature))
    return shapes.result(), copy_ratios(spec, ws)


def copy_ratios(spec: PersonaSpec, ws: Workspace) -> dict | None:
    """How much of its template's own wording each answer keeps (word 4-grams of the template
    filled with the answer's values; checks/answer.py `copy_ratio`): ~1 for the offline
    grammar and `--fill strict`, which build answers around their template, low when a
    model writes in its own words. None without the template bank."""
    from persona.checks.answer import COPY_LIMIT, copy_ratio
    from persona.providers.offline import lookup_values

    if not ws.templates_file.exists():
        return None
    bank = {t["id"]: t["text"] for _, t in iter_jsonl(ws.templates_file)}
    ratios = []
    for (_, ex), (_, m) in zip(iter_jsonl(ws.final / "all.jsonl"),
                               iter_jsonl(ws.final / "meta.jsonl"), strict=False):
        template = bank.get(m.get("template_id"))
        if template is None:
            continue
        try:
            values = lookup_values(spec, m.get("values") or {})
        except KeyError:
            values = {}
        answer = ex["messages"][-1]["content"]
        r = copy_ratio(answer, template, spec, values)
        if r is not None:
            ratios.append(r)
    if not ratios:
        return None
    a = np.asarray(ratios)
    return {"answers": len(ratios), "mean": round(float(a.mean()), 3),
            "p50": round(float(np.percentile(a, 50)), 3),
            "p95": round(float(np.percentile(a, 95)), 3),
            "at_or_above_limit": int((a >= COPY_LIMIT).sum()), "limit": COPY_LIMIT}


def tokens_per_pair(stages: dict, count: int) -> dict | None:
    """Input and output tokens an LLM spent per delivered pair (every stage, retries in)."""
    usage = stages.get("llm_usage")
    if not usage or not count:
        return None
    inp = sum(u.get("prompt_tokens", 0) for u in usage.values())
    out = sum(u.get("completion_tokens", 0) for u in usage.values())
    return {"input": round(inp / count, 1), "output": round(out / count, 1)}


def provenance(spec: PersonaSpec, ws: Workspace, stages: dict) -> dict:
    """How the data was made: provider (the offline grammar, or which model on which host;
    never a key), seed, counts, split rule, held-out topics, spec / template bank / prompt
    digests, the tool's version. No date: two runs with one seed give the same bytes (the
    time of each run is in generated/<persona>/runs.jsonl)."""
    from persona import __version__

    fill = Workspace.fingerprint(ws.answers)
    llm = stages.get("llm_params")
    split = (stages.get("merge") or {}).get("split") or {}
    out = {"tool": f"persona {__version__}",
           "provider": fill.get("provider", "offline"),
           "seed": fill.get("seed"), "pairs_asked": fill.get("count"),
           "spec": {"id": spec.id, "sha256": fill.get("persona") or spec.fingerprint()},
           "template_bank": fill.get("templates"),
           "split": {"by": split.get("by", "template"), "ratios": split.get("ratios"),
                     "holdout_topics": split.get("holdout_topics", [])}}
    if llm:
        out["model"] = {k: llm.get(k) for k in ("model", "host", "fill", "per_request",
                                                 "family", "reasoning_effort", "extra",
                                                 "batch_api")}
        out["prompts"] = llm.get("prompts", {})
    return out


def write(spec: PersonaSpec, ws: Workspace, stages: dict[str, dict], tokenizer=None) -> dict:
    report = measure(spec, ws, tokenizer)
    report["stages"] = stages
    report["provenance"] = provenance(spec, ws, stages)
    per_pair = tokens_per_pair(stages, report["count"])
    if per_pair:
        report["tokens_per_pair"] = per_pair
    write_json(ws.final / "report.json", report)
    write_text(ws.final / "DATASET_CARD.md", card(spec, report, _examples(ws, 3)))
    return report


def _examples(ws: Workspace, n: int) -> list[tuple[str, str]]:
    out = []
    for _, ex in iter_jsonl(ws.final / "train.jsonl"):
        msgs = {m["role"]: m["content"] for m in ex["messages"]}
        out.append((msgs["user"], msgs["assistant"]))
        if len(out) == n:
            break
    return out


def diversity_rows(d: dict) -> list[tuple[str, str]]:
    """The diversity figures as (measure, value) rows: card, printed table."""
    lk = d["leakage"]
    rows = [
        ("distinct 5-word answer openings", f"{d['distinct_openings_5w']['count']} "
                                            f"({d['distinct_openings_5w']['percent']:.1f} %)"),
        ("100 most common sentences", f"{d['top100_sentences_percent']:.1f} % of answer "
                                      "sentences"),
        ("most repeated sentence", f"{d['most_repeated_sentence']['percent']:.1f} % of answers"),
        ("sentences per answer", " ".join(
            f"{k}:{v}" for k, v in d["sentences_per_answer"]["distribution"].items())
         + f" (max {d['sentences_per_answer']['max_share_percent']:.1f} %)"),
        ("type/token ratio", f"{d['type_token_ratio']['ratio']} "
                             f"({d['type_token_ratio']['types']} types)"),
        ("distinct questions", f"{d['distinct_questions']['count']} "
                               f"({d['distinct_questions']['percent']:.1f} %)"),
        ("questions with persona labels", str(d["questions_with_labels"]["count"])),
        ("test questions in train", str(lk["test_questions_in_train"]) + (
            f" ({lk['test_questions_in_train_loose']} with the address or a lead aside)"
            if lk.get("test_questions_in_train_loose") else "")),
    ]
    if "sentence_shapes" in d:
        sh = d["sentence_shapes"]
        rows.insert(3, ("distinct sentence shapes", f"{sh['distinct']} ({sh['percent']:.1f} % "
                                                    "of answer sentences, values masked)"))
    if "val_templates_in_train" in lk:
        rows.append(("val / test templates in train",
                     f"{lk['val_templates_in_train']} / {lk['test_templates_in_train']}"))
    return rows


def llm_rows(r: dict) -> list[tuple[str, str]]:
    """Copy ratio and tokens per pair as (measure, value) rows: card, printed table."""
    rows = []
    cr = r.get("copy_ratio")
    if cr:
        rows.append(("copy of its template (word 4-grams)",
                     f"mean {cr['mean']:.2f}, median {cr['p50']:.2f}, p95 {cr['p95']:.2f}; "
                     f"{cr['at_or_above_limit']} at or above {cr['limit']:.2f}"))
    tp = r.get("tokens_per_pair")
    if tp:
        rows.append(("LLM tokens per pair (in / out)", f"{tp['input']:,} / {tp['output']:,}"))
    usage = r.get("stages", {}).get("llm_usage") or {}
    reasoning = sum(u.get("reasoning_tokens", 0) for u in usage.values())
    cached = sum(u.get("cached_tokens", 0) for u in usage.values())
    if reasoning or cached:
        rows.append(("LLM reasoning / cached input tokens", f"{reasoning:,} / {cached:,}"))
    for note in (r.get("stages", {}).get("llm_params") or {}).get("adapted", []):
        rows.append(("parameters adapted to the server", note))
    return rows


def made_with(p: dict) -> list[str]:
    """The card's "Made with" section: how the data was made (report.json → provenance)."""
    if not p:
        return []
    m = p.get("model")
    if m:
        effort = f", reasoning effort {m['reasoning_effort']}" if m.get("reasoning_effort") else ""
        batch = ", through the Batch API" if m.get("batch_api") else (
            f", up to {m['per_request']} items per request" if m.get("per_request") else "")
        who = (f"the model `{m['model']}` at {m['host']} (OpenAI-compatible chat, "
               f"`--fill {m.get('fill') or 'write'}`{effort}{batch}); the code fixed every "
               "slot's template, style, values and slip, and checked every answer")
    else:
        who = "the spec's offline grammar (no model): the same bytes for the same seed"
    held = ", ".join(p["split"].get("holdout_topics") or []) or "none"
    ratios = "/".join(f"{r:g}" for r in p["split"].get("ratios") or [])
    lines = ["", "## Made with", "",
             f"- Writer: {who}.",
             f"- Seed {p.get('seed')}; {p.get('pairs_asked')} pairs asked.",
             f"- Split by {p['split'].get('by')} ({ratios}); topics held out of train: {held}.",
             f"- Spec `{p['spec']['id']}` sha256 {p['spec']['sha256']}; template bank "
             f"{p.get('template_bank')}; {p.get('tool')}."]
    if p.get("prompts"):
        lines.append("- Prompts (sha256): " + ", ".join(f"{k} {v}" for k, v in
                                                       p["prompts"].items()) + ".")
    lines.append("- No date here (a rerun with the seed gives these bytes); each run's time is "
                 "in `generated/<persona>/runs.jsonl`.")
    return lines


def card(spec: PersonaSpec, r: dict, examples: list[tuple[str, str]] = ()) -> str:
    p = spec.persona
    lines = [
        f"# {p.name} — persona style-transfer dataset",
        "",
        f"{p.description or p.name}",
        "",
        f"- Language: `{p.language}`; every answer is signed “{p.signature}”.",
        f"- {r['count']} question/answer pairs in OpenAI chat format (system / user / "
        f"assistant): train {r['splits']['train']}, val {r['splits']['val']}, "
        f"test {r['splits']['test']}.",
        "- Made by `persona`; every figure below was "
        "measured on the files in this folder.",
        "",
        "## System prompt",
        "",
        f"> {p.system_prompt}",
        "",
        "## Style mix",
        "",
        "| style | count | share | target |",
        "|---|---:|---:|---:|",
    ]
    for name, s in r["style_mix"].items():
        lines.append(f"| {spec.styles[name].label} (`{name}`) | {s['count']} | "
                     f"{s['percent']:.2f} % | {s['target_percent']:.2f} % |")
    sl = r["slips"]
    kinds = ", ".join(f"{k} {v}" for k, v in sl["by_kind"].items()) or "none"
    tq, ta = r["tokens"]["question"], r["tokens"]["answer"]
    lines += [
        "",
        "## Measured",
        "",
        "| measure | value |",
        "|---|---|",
        f"| slips | {sl['count']} ({sl['percent']:.2f} %, target {sl['target_percent']:.2f} %): "
        f"{kinds} |",
        f"| duplicates removed at merge | {r['stages'].get('merge', {}).get('removed', 0)} |",
        f"| exact duplicates left | {r['exact_duplicates']} |",
        f"| unresolved placeholders | {r['unresolved_placeholders']} |",
        f"| signed answers | {r['signature']['signed']} ({r['signature']['percent']:.2f} %) |",
        f"| templates used | {r['templates']['used']} (each {r['templates']['uses_min']}–"
        f"{r['templates']['uses_max']}×) |",
        f"| question tokens ({r['tokens']['tokenizer']}) | min {tq['min']}, median {tq['p50']}, "
        f"mean {tq['mean']}, p95 {tq['p95']}, max {tq['max']} |",
        f"| answer tokens | min {ta['min']}, median {ta['p50']}, mean {ta['mean']}, "
        f"p95 {ta['p95']}, max {ta['max']} |",
    ]
    for name, v in r["values"].items():
        lines.append(f"| values of `{{{name}}}` used | {v['used']} of {v['available']} |")
    mod = r["stages"].get("moderation")
    if mod:  # `persona moderate --fix` rewrote this folder
        lines.append(f"| moderation fix ({mod['mode']}) | {mod['flagged']} flagged: "
                     f"{mod['regenerated']} regenerated, {mod['dropped']} dropped |")
    lines += [f"| {k} | {v} |" for k, v in llm_rows(r)]
    lines += ["", "## Diversity and held-out splits", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in diversity_rows(r["diversity"])]
    split = r["stages"].get("merge", {}).get("split") or {}
    if split:
        held = ", ".join(split["holdout_topics"]) or "none"
        lines += ["", f"Splits are made by template: every template is in one split only "
                  f"(templates train/val/test: {split['templates']['train']}/"
                  f"{split['templates']['val']}/{split['templates']['test']}). "
                  f"Topics held out of train: {held}"
                  + (f" ({split['dropped']} pairs of them dropped because their template "
                     "is in train)." if split["dropped"] else ".")]
    if examples:
        lines += ["", "## Examples (first of train.jsonl)", ""]
        for q, a in examples:
            lines += [f"> **Q:** {q}", ">", "> **A:** " + a.replace("\n\n", "\n>\n> "), ""]
    lines += made_with(r.get("provenance") or {})
    lines += ["", "## Intended use", "",
              "Satire and style-transfer research: fine-tuning a model to imitate a speaking "
              "style. The answers are invented; they are not quotes.", ""]
    return "\n".join(lines)
