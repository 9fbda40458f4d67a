"""Write docs/llm-requests.md: one request per stage and style, exactly as the model gets it.

    python scripts/render_requests.py                 # babis, seed 42 -> docs/llm-requests.md
    python scripts/render_requests.py --persona butler --out /tmp/butler-requests.md

A reader judges the task from these without running anything: the system and user messages
of a templates request, a fill request in every style (write mode), one in strict mode, a
rephrase for a slip, and a questions request, each with its input tokens (o200k_base, the chat
format's count, what the dry run and the test server count).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def block(title: str, messages: list[dict], model: str, note: str = "") -> list[str]:
    from persona.checks.tokens import estimate_request_tokens

    tokens = estimate_request_tokens(messages, model)[0]
    out = [f"## {title}", "", f"{note}{tokens:,} input tokens ({model}).", ""]
    for m in messages:
        out += [f"**{m['role']}**", "", "````text", m["content"], "````", ""]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persona", default="babis")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--model", default="gpt-5.4-mini")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "llm-requests.md")
    args = ap.parse_args()

    from persona.providers import llm_tasks as tasks
    from persona.providers.base import FillRequest, QuestionRequest
    from persona.providers.offline import OfflineProvider
    from persona.spec import load_spec
    from persona.stages import templates as templates_stage
    from persona.stages.fill import slip_schedule, style_schedule, template_schedule

    spec = load_spec(args.persona)
    bank_file = ROOT / "templates" / f"{spec.id}.jsonl"
    if bank_file.exists():
        bank = templates_stage.load(bank_file, spec)
    else:
        from persona.providers.base import TemplateRecord
        from persona.text import categories, forms_used

        texts = OfflineProvider().write_templates(spec, spec.grammar.count, args.seed)
        bank = [TemplateRecord(f"t{i}", t, categories(t), forms_used(t, spec))
                for i, t in enumerate(texts)]
    count = 3000
    styles = style_schedule(spec.style.mix, count, args.seed)
    slips = slip_schedule(spec.style.slip_rate, count, args.seed)
    order = list(template_schedule(len(bank), 0, count, args.seed))

    def slot(i: int) -> FillRequest:
        return FillRequest(i, f"{spec.id}-a{i + 1:06d}", bank[order[i]], styles[i], i in slips)

    lines = [f"# The LLM requests, as the model gets them ({spec.persona.name})", "",
             f"Made by `python scripts/render_requests.py --persona {spec.id} --seed "
             f"{args.seed}` from the built-in prompts (`persona/prompts/*.md`; a workspace's "
             "`prompts/` folder replaces them). The JSON answer each request asks for is "
             "enforced with a `json_schema` response format where the server supports it.",
             ""]
    lines += block("Stage 1: templates", tasks.templates_requests(spec, 20, args.seed)[0],
                   args.model, "Twenty templates per request. ")
    k = 3  # items per request shown (a run sends --per-request, default 8)
    for style in spec.styles:
        picked = [i for i in range(count) if styles[i] == style][:k]
        if not picked:
            continue
        members = [tasks.fill_member(spec, slot(i), args.seed) for i in picked]
        msgs = tasks.group_messages(spec, "fill", tasks.fill_shared(
            spec, args.seed, style, picked[0] // tasks.GROUP_BLOCK), [t for t, _ in members])
        label = spec.styles[style].label
        checks = json.dumps(members[0][1].checks("write"), ensure_ascii=False)
        slip = "makes a slip in it" if picked[0] in slips else "makes no slip"
        lines += block(f"Stage 2: fill, style “{label}” (write mode, the default)", msgs,
                       args.model, f"Slots {', '.join(str(i + 1) for i in picked)} in one "
                       f"request ({k} here; a run sends up to --per-request, default "
                       f"{tasks.PER_REQUEST}). The code checks each answer on its own, the "
                       f"first against `{checks}`, and {slip}. ")
    msgs, _ = tasks.fill_request(spec, slot(0), args.seed, 0, "strict")
    lines += block("Stage 2: fill, `--fill strict`", msgs, args.model,
                   "The course's original shape: the template word for word, one per request. ")
    first = next(i for i in range(count) if i in slips)
    previous = {"text": "(the slot's answer, in which no slip rule found a word)",
                "attempt": 0}
    rephrase = FillRequest(first, f"{spec.id}-a{first + 1:06d}", bank[order[first]],
                           styles[first], True, 1, previous=previous)
    lines += block("Stage 2: a rephrase for a slip", tasks.fill_request(spec, rephrase,
                                                                       args.seed)[0],
                   args.model, "Sent alone, once, only when no slip rule fits the answer a "
                   "slip slot got. ")
    items = []
    for i in range(k):
        res = OfflineProvider().fill(spec, [slot(i)], args.seed)[0]
        answer = {"id": slot(i).id, "text": res.text, "values": res.values}
        items.append(tasks.question_member(spec, QuestionRequest(i, answer), args.seed))
    msgs = tasks.group_messages(spec, "questions", tasks.question_shared(spec, args.seed, 0),
                                items)
    lines += block("Stage 3: questions", msgs, args.model,
                   f"{k} answers in one request; the answers are the offline grammar's here, "
                   "in a run the model's. ")
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
