"""User-facing errors: each kind has its own type and exit code; cli.py prints them as one line."""

from __future__ import annotations


class PersonaError(Exception):
    """A known error caused by the user's input or environment (not a bug)."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class SpecError(PersonaError):
    """The persona spec (TOML) is invalid."""


class InputError(PersonaError):
    """An input file is missing, unreadable or malformed."""


class WorkspaceError(PersonaError):
    """The workspace holds outputs that do not fit the requested run."""


class ProviderError(PersonaError):
    """The text provider (LLM server) failed in a way retries could not fix."""


class TargetMissed(PersonaError):
    """The finished dataset misses a target the spec sets (style mix, slip rate); the files
    are written and kept, the exit code says the run did not deliver what was asked."""

    exit_code = 1


class BudgetExceeded(PersonaError):
    """Continuing would exceed --max-cost."""

    exit_code = 3


def from_validation(e, *, file: str | None = None, cls: type[PersonaError] = PersonaError,
                    model: type | None = None) -> PersonaError:
    """A pydantic ValidationError as one of our one-line errors: the first problem, its field
    path (`style.slip_rate`), and how many more there are. An unknown key comes first, with
    the closest known key of its table (from `model`, the validated class): a typo also
    makes the real key "missing", and that message alone hides the cause."""
    errors = e.errors()
    first = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    if first["type"] == "extra_forbidden":
        parent = tuple(first["loc"][:-1])
        known = _fields_at(model, parent) | {
            str(x["loc"][-1]) for x in errors
            if x["type"] == "missing" and tuple(x["loc"][:-1]) == parent}
        return cls(unknown_key(str(first["loc"][-1]), known) + more, file=file,
                   field=".".join(str(p) for p in parent) or None)
    field = ".".join(str(p) for p in first["loc"]) or None
    msg = first["msg"].removeprefix("Value error, ")
    return cls(msg + more, file=file, field=field)


def unknown_key(key: str, known) -> str:
    """`unknown key `slip-rate` (did you mean `slip_rate`?)`."""
    import difflib

    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f"unknown key `{key}`" + (f" (did you mean `{close[0]}`?)" if close else "")


def _fields_at(model: type | None, loc: tuple) -> set[str]:
    """The field names of the pydantic model found at `loc` inside `model` (dict values and
    list items are stepped through by their key or index); empty when it cannot be told."""
    from typing import Union, get_args, get_origin

    def unwrap(tp):
        while True:
            if hasattr(tp, "__metadata__"):      # Annotated[X, ...]
                tp = get_args(tp)[0]
            elif get_origin(tp) is Union or type(tp).__name__ == "UnionType":
                tp = next((a for a in get_args(tp) if hasattr(a, "model_fields")), None)
            else:
                return tp

    tp = unwrap(model)
    for part in loc:
        if hasattr(tp, "model_fields"):
            info = tp.model_fields.get(part)
            tp = unwrap(info.annotation) if info else None
        elif get_origin(tp) in (dict, list, tuple, set) and get_args(tp):
            tp = unwrap(get_args(tp)[-1 if get_origin(tp) is dict else 0])
        else:
            return set()
    return set(tp.model_fields) if hasattr(tp, "model_fields") else set()
