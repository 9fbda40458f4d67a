"""Can the base model be loaded? Answered before anything slow, with one line if not.

Without this, a hub id that is not in the local cache and a hub that cannot be reached end
in transformers' HEAD retries (about 50 s) and a traceback. Here: a local path must exist; a
hub id is looked up in the local cache (`try_to_load_from_cache`, no network); if it is not
there, offline mode fails at once, otherwise the hub is asked once with a short timeout.
A cached model while the hub is unreachable switches this process to offline mode, so
loading reads the cache without retrying the network for every file.
"""

from __future__ import annotations

import re
from pathlib import Path

from persona.errors import InputError

HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")
HUB_TIMEOUT = 5.0


def check_base_model(model: str, timeout: float = HUB_TIMEOUT) -> str | None:
    """Raise InputError unless `model` can be loaded; return a note for the plan, or None."""
    folder = Path(model).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise InputError("not a folder: a base model is a folder or a hub id",
                             file=model, field="base_model")
        return None
    if model.startswith(("/", ".", "~")) or not HUB_ID.match(model):
        raise InputError("no such folder, and not a hub id (org/name)", file=model,
                         field="base_model")
    from huggingface_hub import constants, try_to_load_from_cache

    cache = constants.HF_HUB_CACHE
    cached = isinstance(try_to_load_from_cache(model, "config.json"), str)
    if constants.HF_HUB_OFFLINE:
        if cached:
            return None
        raise InputError(f"{model} is not in the local Hugging Face cache ({cache}) and "
                         f"HF_HUB_OFFLINE is set: download it where the hub is reachable "
                         f"(hf download {model}) and copy the cache here, or pass a local "
                         "folder", field="base_model")
    problem = _ask_hub(model, timeout)
    if problem is None:
        return None
    if cached:
        constants.HF_HUB_OFFLINE = True  # read at call time by huggingface_hub/transformers
        return f"hub unreachable ({problem}): using the cached copy of {model}"
    raise InputError(f"cannot reach the Hugging Face hub ({problem}) and {model} is not in "
                     f"the local cache ({cache}): download it where the hub is reachable "
                     f"(hf download {model}) and copy the cache here (or set HF_HOME to "
                     "it), or pass a local folder; with HF_HUB_OFFLINE=1 cached models load "
                     "without asking the hub", field="base_model")


def _ask_hub(model: str, timeout: float) -> str | None:
    """None when the hub knows `model`; what went wrong when it cannot be asked. A hub that
    answers that the model does not exist (or is gated) is an InputError of its own."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (  # HTTPError: the hub's HTTP library's base error
        GatedRepoError,
        HfHubHTTPError,
        HTTPError,
        RepositoryNotFoundError,
    )

    try:
        HfApi().model_info(model, timeout=timeout)
    except GatedRepoError:
        raise InputError(f"{model} is gated on the Hugging Face hub: accept its terms on its "
                         "page and log in (hf auth login)", field="base_model") from None
    except RepositoryNotFoundError:
        raise InputError(f"no model {model} on the Hugging Face hub (a private one needs "
                         "hf auth login)", field="base_model") from None
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        return f"HTTP {status}"
    except (HTTPError, OSError) as e:
        return type(e).__name__
    return None
