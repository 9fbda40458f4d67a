"""Print the diversity and held-out figures of any dataset folder (final/<persona>/).

    python scripts/dataset_stats.py final/babis
    python scripts/dataset_stats.py final/babis --persona babis --json
    python scripts/dataset_stats.py some/llm_run/final/babis --no-classifier

Reads all.jsonl (or train+val+test), train/test for leakage, meta.jsonl for styles and
templates when present. The persona's labels (journalist.labels of its spec) are the words a
journalist's question must not borrow from the persona; pass --labels to add some.
The style classifier (char 2-4-grams, logistic regression, 5-fold, seed 0) sees each answer
without its first and last sentence: how much of the style runs through the whole answer.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from persona import diversity  # noqa: E402


def read_pairs(path: Path) -> tuple[list[str], list[str]]:
    qs, ans = [], []
    if not path.exists():
        return qs, ans
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        msgs = {m["role"]: m["content"] for m in json.loads(line)["messages"]}
        qs.append(msgs.get("user", ""))
        ans.append(msgs.get("assistant", ""))
    return qs, ans


def labels_of(persona: str | None) -> tuple[list[str], str | None]:
    if not persona:
        return [], None
    from persona.spec import load_spec

    try:
        spec = load_spec(persona)
    except Exception:  # noqa: BLE001 - a folder named like no persona: no labels
        return [], None
    return list(getattr(spec.journalist, "labels", []) or []), spec.persona.signature


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("final_dir", type=Path, help="folder with all.jsonl / train.jsonl / ...")
    ap.add_argument("--persona", help="persona id or spec path (default: the folder's name)")
    ap.add_argument("--labels", nargs="*", default=[], help="extra persona labels")
    ap.add_argument("--no-classifier", action="store_true", help="skip the style classifier")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    args = ap.parse_args()
    d = args.final_dir
    if not d.is_dir():
        print(f"error: {d}: not a folder", file=sys.stderr)
        return 2
    qs, ans = read_pairs(d / "all.jsonl")
    if not ans:
        for split in ("train", "val", "test"):
            q, a = read_pairs(d / f"{split}.jsonl")
            qs += q
            ans += a
    if not ans:
        print(f"error: {d}: no all.jsonl or train/val/test.jsonl with pairs", file=sys.stderr)
        return 2
    labels, signature = labels_of(args.persona or d.name)
    signature = signature or diversity.guess_signature(ans)
    out = diversity.measure(qs, ans, signature, labels + args.labels)
    meta = []
    if (d / "meta.jsonl").exists():
        meta = [json.loads(x) for x in (d / "meta.jsonl").read_text(encoding="utf-8").splitlines()
                if x.strip()]
    train_q, _ = read_pairs(d / "train.jsonl")
    test_q, _ = read_pairs(d / "test.jsonl")
    out["leakage"] = diversity.leakage(train_q, test_q, meta)
    if not args.no_classifier and meta and len(meta) == len(ans):
        out["style_classifier"] = diversity.style_classifier(ans, [m["style"] for m in meta],
                                                             signature)
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    print_table(out)
    return 0


def print_table(r: dict) -> None:
    rows = [
        ("answers", r["answers"]),
        ("distinct 5-word openings", f"{r['distinct_openings_5w']['count']} "
                                     f"({r['distinct_openings_5w']['percent']} %)"),
        ("100 most common sentences", f"{r['top100_sentences_percent']} % of "
                                      f"{r['answer_sentences']} answer sentences"),
        ("most repeated sentence", f"{r['most_repeated_sentence']['percent']} % of answers: "
                                   f"{r['most_repeated_sentence']['text']!r}"),
        ("sentences per answer", " ".join(f"{k}:{v}" for k, v in
                                          r["sentences_per_answer"]["distribution"].items())
         + f" (max share {r['sentences_per_answer']['max_share_percent']} %)"),
        ("type/token ratio", f"{r['type_token_ratio']['types']} types / "
                             f"{r['type_token_ratio']['tokens']} tokens = "
                             f"{r['type_token_ratio']['ratio']}"),
        ("distinct questions", f"{r['distinct_questions']['count']} "
                               f"({r['distinct_questions']['percent']} %, max "
                               f"{r['distinct_questions']['max_repeats']}x)"),
        ("questions with persona labels", r["questions_with_labels"]["count"]),
    ]
    lk = r["leakage"]
    rows.append(("test questions in train", lk["test_questions_in_train"]))
    if "val_templates_in_train" in lk:
        rows.append(("val / test templates in train",
                     f"{lk['val_templates_in_train']} / {lk['test_templates_in_train']} "
                     f"(templates train/val/test {lk['templates']['train']}/"
                     f"{lk['templates']['val']}/{lk['templates']['test']})"))
        rows.append(("test topics in train", f"{lk['test_topics_in_train']} of "
                                             f"{lk['topics']['test']}"))
    if "style_classifier" in r:
        c = r["style_classifier"]
        rows.append(("style classifier (no first/last sentence)",
                     f"{c['accuracy_percent']} % ({c['folds']}-fold; chance "
                     f"{c['chance_percent']} %; {c['empty_middles']} empty middles)"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    sys.exit(main())
