"""Text providers. `make_provider` resolves a name (or "auto") to one."""

from __future__ import annotations

import os

from persona.errors import PersonaError

NAMES = ("auto", "offline", "openai")


def resolve_name(name: str, base_url: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY") -> tuple[str, str]:
    """The provider to use and why (auto: an LLM only when a key or base URL is given)."""
    if name != "auto":
        return name, "chosen with --provider"
    if base_url or os.environ.get("OPENAI_BASE_URL") or os.environ.get(api_key_env):
        return "openai", "an API key or base URL is set"
    return "offline", "no API key or base URL given"


def make_provider(name: str, **options):
    if name == "offline":
        from persona.providers.offline import OfflineProvider

        return OfflineProvider()
    if name == "openai":
        from persona.providers.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(**options)
    raise PersonaError(f"unknown provider {name!r}; choose one of {', '.join(NAMES)}")
