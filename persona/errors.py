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


class BudgetExceeded(PersonaError):
    """Continuing would exceed --max-cost."""

    exit_code = 3


def from_validation(e, *, file: str | None = None,
                    cls: type[PersonaError] = PersonaError) -> PersonaError:
    """A pydantic ValidationError as one of our one-line errors: the first problem, its field
    path (`style.slip_rate`), and how many more there are."""
    first = e.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return cls(msg + more, file=file, field=field)
