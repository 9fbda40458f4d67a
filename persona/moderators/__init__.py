"""Who judges a text: the offline screen, OpenAI's moderation endpoint, or Llama Guard.

`make_moderator` resolves a name (or None: auto) to one. Every moderator has `name`, `model`,
`heuristic` (True: a word-list screen, not a verdict) and `check(texts) -> list[Verdict]`,
one verdict per text, in order. Heavy imports (openai, simplemma) live in the modules.
"""

from __future__ import annotations

import os

from persona.errors import InputError

NAMES = ("offline", "openai", "llamaguard")


def resolve(name: str | None, base_url: str | None = None,
            api_key_env: str = "OPENAI_API_KEY") -> tuple[str, str]:
    """The moderator to use and why: without a name, OpenAI's endpoint when a key or a base
    URL is set, else the offline screen (Llama Guard is only used when asked for)."""
    if name:
        if name not in NAMES:
            raise InputError(f"unknown moderation provider {name!r}; choose one of "
                             f"{', '.join(NAMES)}", field="--provider")
        return name, "chosen with --provider"
    if base_url or os.environ.get("OPENAI_BASE_URL") or os.environ.get(api_key_env):
        return "openai", "an API key or base URL is set"
    return "offline", "no API key or base URL given"


def make_moderator(name: str, **options):
    if name == "offline":
        from persona.moderators.offline import OfflineScreen

        return OfflineScreen()
    if name == "openai":
        from persona.moderators.openai import OpenAIModerator

        return OpenAIModerator(**options)
    if name == "llamaguard":
        from persona.moderators.llamaguard import LlamaGuard

        return LlamaGuard(**options)
    raise InputError(f"unknown moderation provider {name!r}; choose one of {', '.join(NAMES)}")
