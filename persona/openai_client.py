"""The OpenAI client of `persona upload` / `persona jobs`, and the SDK's errors as our
one-line errors. The API key comes from an environment variable and stays in the client:
never in a flag, a record, a log line or an error message."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from persona.errors import PersonaError, ProviderError

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class TrainingNotAvailable(PersonaError):
    """OpenAI answered 403 training_not_available: it creates no fine-tuning jobs for us."""

    exit_code = 1


def server_url(base_url: str | None) -> str:
    return (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def make_client(base_url: str | None, api_key_env: str = "OPENAI_API_KEY",
                timeout: float = 120.0, max_retries: int = 3):
    from openai import OpenAI  # heavy: only when something is sent

    key = os.environ.get(api_key_env)
    if not key:
        if not (base_url or os.environ.get("OPENAI_BASE_URL")):
            raise ProviderError(f"no API key: set {api_key_env}, or pass --base-url for a "
                                "server that needs none")
        key = "not-needed"
    return OpenAI(base_url=server_url(base_url), api_key=key, timeout=timeout,
                  max_retries=max_retries)


@contextmanager
def api_errors(base_url: str) -> Iterator[None]:
    """The SDK's exceptions as our one-line errors (never with the key in them)."""
    import openai

    try:
        yield
    except openai.PermissionDeniedError as e:
        if _code(e) == "training_not_available":
            raise TrainingNotAvailable(
                "OpenAI creates no fine-tuning jobs for this organisation (HTTP 403 "
                "training_not_available; the files are uploaded and recorded). Train locally "
                "with `persona finetune`, or take the data to another trainer with "
                "`persona export`") from None
        raise ProviderError(f"{base_url} refused the request (HTTP 403): {_msg(e)}") from None
    except openai.AuthenticationError as e:
        raise ProviderError(f"{base_url} refused the API key (HTTP 401): {_msg(e)}") from None
    except openai.NotFoundError as e:
        raise PersonaError(f"not found on {base_url}: {_msg(e)}") from None
    except openai.APIConnectionError as e:
        raise ProviderError(f"cannot reach {base_url}: {e.__class__.__name__}") from None
    except openai.APIStatusError as e:
        raise ProviderError(f"{base_url} answered HTTP {e.status_code}: {_msg(e)}") from None


def _code(e) -> str | None:
    body = e.body if isinstance(e.body, dict) else {}
    return (body.get("error") or body).get("code") or getattr(e, "code", None)


def _msg(e) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    return str((body.get("error") or body).get("message") or e.message)[:300]


