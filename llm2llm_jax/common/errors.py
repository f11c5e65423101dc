"""The base of every user-facing error: input, config or environment that needs fixing (one line, no
traceback)."""


class UserError(Exception):
    """Something the user can fix; the message names the file, field or config key and says how.

    `launch/run.py` prints it as one line and exits with status 2. Each module's own error type derives
    from it (and from the builtin it used to be, so `except ValueError` callers keep working).
    """


class RunError(UserError, RuntimeError):
    """A run that cannot start or continue as configured."""


class ConfigError(UserError, ValueError):
    """A config value that cannot be used: the message names the config key (or the file and field) and the
    fix."""
