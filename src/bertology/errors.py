"""The one exception type that means "the user asked for something we cannot do".

The CLI turns a `UserError` into a one-line message on stderr and exit code 2; anything else is a bug and
keeps its traceback. Raise it with a message that names the file / line / field at fault.
"""


class UserError(Exception):
    """A mistake in the user's input (bad file, missing model, unknown option): exit code 2, no traceback."""
