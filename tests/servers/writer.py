"""How the loopback server writes, and how it misbehaves the way real chat models do.

**Writing** (the default): a `fill` task in persona's write mode (it carries `about`, `idea`,
`style_examples`, `sentences`) is answered by composing, not copying: a sentence of the
server's own that names each value in `about`, then sentences of the style's own material,
as many as `sentences` asks for. The template's wording (`idea`) is not used. A small share
of answers has a writer's flaw (`writer_flaws`): it copies the idea nearly word for word, or
runs on for three sentences too many. A strict task (`template`, `style_phrases`) is filled
word for word (a copier). A `rephrase` task gets its text back with one of the offered words
worked in. A `templates` task gets new templates recombined from clauses of different
examples (some still too close to one example: the stage refuses those).

**Deviating** (`deviate`: the share of answers that deviate, classes drawn uniformly):
answers with a decorated or doubled signature, a label before the text, markdown, quotes
around it, a model's refusal, lowercase sentence starts, an unreported Slovak word, or the
wrong language (English, Slovak); questions repeated word for word across answers, generic
questions that name no topic, questions with the persona's own labels, decorated, lowercase
or in English. Every draw is seeded by the request body, so a run is reproducible.
"""

from __future__ import annotations

import random
import re

ANSWER_DEVIATIONS = ("signature", "label", "markdown", "quotes", "refusal", "lowercase",
                     "slip", "language")
QUESTION_DEVIATIONS = ("repeat", "generic", "label", "decorated", "lowercase", "language")
_SENT = re.compile(r"(?<=[.!?])\s+")
GAP = "___"  # where a topic goes in a shared example

# The server's own sentences: each names a value in its first (nominative) form, which
# every value has, so they stay grammatical whatever the value.
_OWN = {
    "cs": ["{X}, to je dneska největší téma.", "{X}, o tom se tady mluví pořád dokola.",
           "Když se řekne {x}, každej ví, o co jde.", "{X}, to je přesně ta věc, co lidi řeší.",
           "Tak a teď {x}, to je kapitola sama pro sebe.", "{X}, to je moje téma odjakživa.",
           "Moje téma číslo jedna: {x}.", "{X}, na to se mě ptají na každým mítinku.",
           "{X}, o tom se u nás mluví roky.", "{X}, tak o tom bych mohl mluvit hodiny.",
           "{X}, to je téma, které mě fakt zajímá.", "Řeknu vám to na rovinu: {x}."],
    "en": ["{X}, of all things.", "Ah, {x}: I have heard quite enough about it.",
           "When one says {x}, the whole household knows what is meant.",
           "{X}, if you please.", "I have given {x} a great deal of thought, sir.",
           "{X} is not a subject for the drawing room."],
}
_SLOVAK = [("protože", "lebo"), ("teď", "teraz"), ("nikdo", "nikto"), ("všechno", "všetko"),
           ("ještě", "ešte"), ("hned", "hneď"), ("vůbec", "vôbec")]
_REFUSALS = ["Omlouvám se, ale s tímto požadavkem vám nemohu pomoci.",
             "I'm sorry, but I can't help with that request."]


def language_of(body: dict) -> str:
    system = " ".join(str(m.get("content", "")) for m in body.get("messages", [])
                      if m.get("role") == "system")
    return "en" if re.search(r"\b(?:Write in|are in) English\b", system) else "cs"


def persona_name(body: dict) -> str:
    system = " ".join(str(m.get("content", "")) for m in body.get("messages", [])
                      if m.get("role") == "system")
    m = re.search(r"You speak as ([^:]+):", system) or re.search(r"addressed to ([^.]+)\.",
                                                                   system)
    return m.group(1).strip() if m else "Andrej Babiš"


def labels_of(body: dict) -> list[str]:
    system = " ".join(str(m.get("content", "")) for m in body.get("messages", [])
                      if m.get("role") == "system")
    m = re.search(r"words containing: ([^)]*)\)", system)
    return [x.strip() for x in m.group(1).split(",")] if m else []


# -- writing -------------------------------------------------------------------------------

def fill_gaps(text: str, values: dict, rng: random.Random | None) -> str:
    """A shared example's `___` (where a topic goes) filled with the item's values, in their
    first form (a model would inflect them; the checks find a value in any form), from a
    random one on (rng), or in their order (None)."""
    names = [v[0] if isinstance(v, list) else v for v in values.values()] or ["to"]
    start = rng.randrange(len(names)) if rng is not None else 0
    parts = text.split(GAP)
    return "".join(p + (names[(start + i) % len(names)] if i < len(parts) - 1 else "")
                   for i, p in enumerate(parts))


_ADDRESS = re.compile(r"^(?:Pane (?:Babiši|předsedo|premiére), )")
_OPENERS = ["", "", "Pane Babiši, ", "Pane předsedo, ", "Dovolte mi otázku: ",
            "Zůstaňme u toho. ", "Ještě jedna věc. ", "Vraťme se k tomu. "]
_CLOSERS = ["", "", "", " Můžete to vysvětlit?", " Jak to chcete řešit?",
            " Co na to říkáte?"]


# The journalist's own questions (a model writes its own, not only the examples' frames);
# {X} / {x}: the topic in its first form, which every value has.
_OWN_QUESTIONS = [
    "Jaký je váš plán, když jde o téma {x}?", "{X}: co konkrétně s tím uděláte?",
    "Když se řekne {x}, co navrhujete jako první krok?", "Téma {x} lidi trápí. Co jim vzkážete?",
    "Kolik by stálo vaše řešení, pokud jde o téma {x}?",
    "Kdo podle vás nese odpovědnost za téma {x}?",
    "{X}: proč se za posledních deset let nic nezměnilo?",
    "Jak chcete téma {x} financovat?", "Co říkáte kritikům vašeho přístupu k tématu {x}?",
    "Téma {x}: co jste udělal, když jste byl u moci?", "Můžete slíbit konkrétní termín, téma {x}?",
    "Čím se váš program pro téma {x} liší od ostatních?",
    "Jak budete měřit úspěch, pokud jde o téma {x}?", "Téma {x}: kde na to vezmete peníze?",
    "Proč by vám lidé měli věřit, když jde o téma {x}?",
    "Jak vysvětlíte voličům své kroky v tématu {x}?"]
_FOCUS = ["", "", "", " pro důchodce", " pro mladé rodiny", " pro podnikatele", " pro regiony",
          " pro střední třídu", " ještě letos", " do konce volebního období", " po volbách",
          " v příštím roce"]


def journalist(example: str, task: dict, rng: random.Random) -> str:
    """A question in the journalist's own words, like a model writes one: an example's core
    with the topics filled in, or one of its own, its own opening, at times a focus (whom,
    when) and a follow-up."""
    topics = task.get("topics") or {}
    names = [v[0] if isinstance(v, list) else v for v in topics.values()] or ["to"]
    if rng.random() < 0.5:
        core = fill_gaps(example, topics, None)
    else:
        topic = " a ".join(rng.sample(names, len(names)))  # every topic named
        core = rng.choice(_OWN_QUESTIONS).replace("{X}", topic[:1].upper() + topic[1:]) \
            .replace("{x}", topic)
    core = _ADDRESS.sub("", core)
    if core.endswith("?"):
        core = core[:-1] + rng.choice(_FOCUS) + "?"
    one = len(_SENT.split(core)) == 1
    opener = rng.choice([o for o in _OPENERS if one or not o.endswith(". ")])
    if opener.endswith(", "):
        core = core[:1].lower() + core[1:]
    else:
        core = core[:1].upper() + core[1:]
    closer = rng.choice(_CLOSERS) if one and not opener.endswith((". ", ": ")) else ""
    return opener + core + closer


def write_answer(task: dict, body: dict, rng: random.Random, flaws: float) -> str:
    lo, hi = (int(x) for x in str(task.get("sentences", "2-4")).split("-"))
    n = rng.randint(lo, hi)
    about = task.get("about", {})
    if flaws and rng.random() < flaws:
        if rng.random() < 0.5:  # a copier after all
            return " ".join([task.get("idea", ""), *(fill_gaps(e, task.get("about", {}), rng)
                                                     for e in task.get("style_examples", [])[:1])])
        n += 3  # runs on
    lang = language_of(body)
    own = []
    for frame, value in zip(rng.sample(_OWN[lang], len(about)), about.values(), strict=False):
        name = value[0] if isinstance(value, list) else value
        own.append(frame.replace("{X}", name[:1].upper() + name[1:]).replace("{x}", name))
    material = [fill_gaps(s, about, rng) for e in task.get("style_examples", [])
                for s in _SENT.split(e) if s]
    rng.shuffle(material)
    closers = [fill_gaps(s, about, rng) for e in task.get("closers", [])
               for s in _SENT.split(e) if s]
    if closers and rng.random() < 0.5:  # a closer, when used, ends the answer
        material = material + closers[:1]
    sentences = own + material[-max(0, n - len(own)):] if n > len(own) else own
    fillers = (["A to je všechno jasný.", "To je fakt.", "Tak to prostě je.", "To ví každej.",
                "Lidi to vidí.", "To si pamatujte."] if lang == "cs" else
               ["Quite so.", "Indeed it is.", "Mark my words.", "So it is."])
    rng.shuffle(fillers)
    while len(sentences) < n and fillers:  # each filler once
        sentences.insert(len(own), fillers.pop())
    return " ".join(sentences)


def rephrase(task: dict, rng: random.Random) -> str:
    words = task.get("use_one_of") or ["protože"]
    word = rng.choice(words)
    return f"Já vám řeknu, {word}, to je jasný. {task.get('text', '').strip()}"


def write_templates(task: dict, rng: random.Random) -> list[str]:
    """New templates: clauses of two or three different examples joined."""
    examples = [e for e in task.get("examples", []) if e]
    clauses = [c.strip() for e in examples for c in re.split(r"(?<=[,.!?])\s+", e)
               if "{" in c and len(c.split()) >= 3]
    out: list[str] = []
    for _ in range(task.get("count", len(examples))):
        if len(clauses) < 2:
            break
        parts = rng.sample(clauses, min(len(clauses), rng.choice((2, 3))))
        text = " ".join(p.rstrip(",") + ("" if p.endswith((".", "!", "?")) else ".")
                        for p in parts)
        out.append(text[:1].upper() + text[1:])
    return out


# -- deviating -----------------------------------------------------------------------------

def deviate_answer(text: str, body: dict, rng: random.Random) -> str:
    kind = rng.choice(ANSWER_DEVIATIONS)
    name = persona_name(body)
    if kind == "signature":
        return text + rng.choice([f"\n\n— {name}", f"\n\n*{name}*", f"\n\nS pozdravem,\n{name}",
                                  f" {name}", f"\n\n{name}\n\n{name}", f"\n\n**{name}**."])
    if kind == "label":
        return rng.choice([f"{name}: ", "**Odpověď:** ", "Odpověď: ", f"{name} (ironie): "]) + text
    if kind == "markdown":
        return rng.choice([f"```\n{text}\n```", f"> {text}",
                           "\n".join(f"- {s}" for s in _SENT.split(text)),
                           re.sub(r"^(\S+ \S+)", r"**\1**", text)])
    if kind == "quotes":
        return f"„{text}“"
    if kind == "refusal":
        return rng.choice(_REFUSALS)
    if kind == "lowercase":
        return " ".join(s[:1].lower() + s[1:] for s in _SENT.split(text))
    if kind == "slip":
        for cz, sk in _SLOVAK:
            if re.search(rf"\b{cz}\b", text):
                return re.sub(rf"\b{cz}\b", sk, text, count=1)
        return text + " A to je všetko."
    if language_of(body) == "en":
        return "Dobre, to je všetko, čo k tomu poviem, lebo ja som to hovoril."
    return rng.choice(["Well, inflation is the problem and the others are to blame for it, "
                       "that is what I have always said.",
                       "No, ja som to vždy hovoril: to je problém a oni nič nerobia, lebo "
                       "nevedia ako na to."])


def deviate_question(question: str, task: dict, body: dict, rng: random.Random) -> str:
    kind = rng.choice(QUESTION_DEVIATIONS)
    topics = task.get("topics", {})
    topic = next(iter(topics.values()), "to")
    if kind == "repeat":  # the same question for every answer of a topic
        return f"Pane Babiši, co říkáte na téma {topic}?"
    if kind == "generic":
        return rng.choice(["Co na to říkáte?", "Můžete to rozvést?", "A co dál?"])
    if kind == "label":
        answer = task.get("answer", "")
        for stem in labels_of(body):
            m = re.search(rf"\b\w*{re.escape(stem)}\w*", answer, re.I)
            if m:
                return f"{question[:-1]}, a co {m.group(0)}?"
        return question
    if kind == "decorated":
        return rng.choice([f"**Otázka:** „{question}“", f"Novinář: {question}",
                           f'"{question}"'])
    if kind == "lowercase":
        return question[:1].lower() + question[1:]
    return f"Mr Babiš, what do you say about {topic}?"


def answer(task: dict, body: dict, rng: random.Random, cfg) -> dict | None:
    """The JSON answer of a write / rephrase / templates task (None: not one of these)."""
    kind = task.get("task")
    if kind == "fill" and "idea" in task:
        text = write_answer(task, body, rng, cfg.writer_flaws)
        if cfg.deviate and rng.random() < cfg.deviate:
            text = deviate_answer(text, body, rng)
        return {"text": text}
    if kind == "rephrase":
        return {"text": rephrase(task, rng)}
    if kind == "templates":
        return {"templates": write_templates(task, rng)}
    return None


def question_deviation(obj: dict, task: dict, body: dict, rng: random.Random, cfg) -> dict:
    if cfg.deviate and rng.random() < cfg.deviate:
        return {"question": deviate_question(obj["question"], task, body, rng)}
    return obj

