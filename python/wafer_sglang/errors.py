"""The one exception type the CLI turns into a clear message and a non-zero exit."""


class WaferError(Exception):
    """A user-facing failure: the message says what went wrong and what to do about it."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
