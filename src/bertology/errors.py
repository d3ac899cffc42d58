"""The one exception type that means "the user asked for something we cannot do".

The CLI turns a `UserError` into a one-line message on stderr and exit code 2; anything else is a bug and
keeps its traceback. Raise it with a message that names the file / line / field at fault. A field is named in
the library's own terms, in backticks (`max_length`), and listed in `fields`; whoever presents the message to a
user says it in theirs (`UserError.describe`: the CLI gives flag names, --seq-len).
"""

from __future__ import annotations

from typing import Callable


class UserError(Exception):
    """A mistake in the user's input (bad file, missing model, unknown option): exit code 2, no traceback."""

    def __init__(self, message: str, fields: tuple[str, ...] = ()):
        super().__init__(message)
        self.fields = tuple(fields)

    def describe(self, name: Callable[[str], str]) -> str:
        """The message with each field (`max_length`) given as `name(field)` says it (e.g. --max-length)."""
        message = str(self)
        for field in self.fields:
            message = message.replace(f"`{field}`", name(field))
        return message
