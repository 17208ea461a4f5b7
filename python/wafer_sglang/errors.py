"""The one exception type the CLI turns into a clear message and a non-zero exit."""


class WaferError(Exception):
    """A user-facing failure: the message says what went wrong and what to do about it."""

    exit_code = 2
