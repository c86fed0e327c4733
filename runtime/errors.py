"""User-facing errors of the runtime: reported as one line, exit code 2, no traceback."""


class UsageError(Exception):
    """Bad usage or an impossible combination of options."""
