"""Count, in a finished dataset, what a real model's habits would leave in it.

    python scripts/llm_checks.py final/babis
    python scripts/llm_checks.py runs/deviate/final/babis --persona babis --json

Independent of the normaliser (its own plain patterns, so it does not agree with the code by
construction): answers with a decorated, doubled or missing signature, a label before the
text, markdown, quotes around the whole text, a model's refusal, a lowercase start, sentences
starting lowercase, wrong language; questions repeated (exactly, and case/punctuation aside),
test questions found in train, questions with the persona's labels; the style mix and the
slips counted against the spec, and the slips checked in the text: every slip meta.jsonl
reports is in its answer, and no answer without a reported slip holds a slip rule's output
(a literal replacement, e.g. a Slovak word). Exit 1 when any of the zero-targets is missed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_MARKDOWN = re.compile(r"```|\*\*|__|^\s*[-*•]\s|^\s*#|^\s*>", re.M)
_QUOTED = re.compile(r'^\s*["„“«].*["“”»]\s*$', re.S)
_REFUSAL = re.compile(r"omlouvám se,? ale|nemohu (vám )?(s tím )?(pomoci|vyhovět|napsat)|"
                      r"jako (jazykový model|AI)|I'm sorry|I can(?:no|')t help|as an AI", re.I)
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+)[„“\"«(]?([^\W\d_])")
_WORDS = re.compile(r"[^\W\d_]+")


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def pairs(path: Path) -> list[tuple[str, str]]:
    out = []
    for ex in read(path) if path.exists() else []:
        m = {x["role"]: x["content"] for x in ex["messages"]}
        out.append((m["user"], m["assistant"]))
    return out


def key(q: str) -> str:
    return " ".join(_WORDS.findall(q.casefold()))


def measure(folder: Path, spec) -> dict:
    sig = spec.persona.signature
    name = spec.persona.name
    label = re.compile(rf"^\s*\W*(?:{re.escape(name)}|{re.escape(sig.split()[-1]) if sig else 'x^'}"
                       rf"|odpověď|answer|otázka|question)\W*\s*[:—–]", re.I)
    all_pairs = pairs(folder / "all.jsonl")
    meta = read(folder / "meta.jsonl")
    c: Counter = Counter()
    literal = [(r.kind, r.replacement.strip()) for r in spec.slips
               if not re.search(r"\\\d|\\g<", r.replacement)]
    own_text = " ".join(t for _, t in spec.fragments()).casefold()
    from persona.checks.answer import _known_word

    literal = [(k, w) for k, w in literal if w.casefold() not in own_text
               and not (len(w.split()) == 1 and _known_word(w, spec.persona.language))]
    from persona.rules import language_ok

    styles, kinds = Counter(), Counter()
    for (q, a), m in zip(all_pairs, meta, strict=True):
        body = a
        if sig:
            body = a[: -len(sig) - 2] if a.endswith(f"\n\n{sig}") else a
            doubled = re.search(rf"(?:^|[\n.!?—–*-]\s*)[*_]*{re.escape(sig)}[*_.]*\s*$", body)
            c["signature decorated, doubled or missing"] += body == a or bool(doubled)
        c["label before the answer"] += bool(label.search(body))
        c["markdown in the answer"] += bool(_MARKDOWN.search(body))
        c["quotes around the answer"] += bool(_QUOTED.match(body))
        c["a model's refusal"] += bool(_REFUSAL.search(body))
        c["answers starting lowercase"] += body[:1].islower()
        c["answer sentences starting lowercase"] += sum(
            m.group(1).islower() for m in _SENTENCE_START.finditer(body))
        c["answers in another language"] += not language_ok(body, spec.persona.language)
        c["questions starting lowercase"] += q[:1].islower()
        c["questions with markdown or a label"] += bool(_MARKDOWN.search(q) or label.search(q))
        c["questions with persona labels"] += any(x.lower() in q.lower()
                                                  for x in spec.journalist.labels)
        styles[m["style"]] += 1
        slip = m.get("slip")
        if slip:
            kinds[slip["kind"]] += 1
            if slip["to"] not in body:
                c["reported slips not in the text"] += 1
            rest = body.replace(slip["to"], slip["from"], 1)
        else:
            rest = body
        hits = [w for _, w in literal
                if re.search(rf"(?<!\w)[{w[0].upper()}{w[0].lower()}]{re.escape(w[1:])}(?!\w)",
                             rest)]
        c["unreported slips in the text"] += bool(hits)
    n = len(all_pairs)
    qs = [q for q, _ in all_pairs]
    train = {q for q, _ in pairs(folder / "train.jsonl")}
    train_keys = {key(q) for q in train}
    test = [q for q, _ in pairs(folder / "test.jsonl")]
    slips_total = sum(kinds.values())
    return {
        "pairs": n,
        "zero_targets": dict(c),
        "distinct_questions_percent": round(100 * len(set(qs)) / n, 2) if n else 0,
        "distinct_questions_by_key_percent": round(100 * len({key(q) for q in qs}) / n, 2)
        if n else 0,
        "test_questions_in_train": sum(q in train for q in test),
        "test_questions_in_train_by_key": sum(key(q) in train_keys for q in test),
        "style_mix": {s: {"count": styles[s], "target": round(spec.style.mix[s] * n, 1)}
                      for s in spec.styles},
        "slips": {"count": slips_total, "target": round(spec.style.slip_rate * n, 1),
                  "by_kind": dict(sorted(kinds.items()))},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("final_dir", type=Path)
    ap.add_argument("--persona", help="persona id or spec path (default: the folder's name)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from persona.spec import load_spec

    spec = load_spec(args.persona or args.final_dir.name)
    r = measure(args.final_dir, spec)
    if args.json:
        print(json.dumps(r, ensure_ascii=False, indent=1))
    else:
        print(f"pairs: {r['pairs']}")
        for k, v in r["zero_targets"].items():
            print(f"  {k}: {v}")
        print(f"distinct questions: {r['distinct_questions_percent']} % "
              f"({r['distinct_questions_by_key_percent']} % case/punctuation aside)")
        print(f"test questions in train: {r['test_questions_in_train']} "
              f"({r['test_questions_in_train_by_key']} case/punctuation aside)")
        print("style mix: " + ", ".join(f"{s} {v['count']}/{v['target']}"
                                        for s, v in r["style_mix"].items()))
        print(f"slips: {r['slips']['count']}/{r['slips']['target']} {r['slips']['by_kind']}")
    bad = sum(v for k, v in r["zero_targets"].items()) + r["test_questions_in_train_by_key"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
