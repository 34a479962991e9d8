"""User-facing errors: one clear line that names the problem and says what to do next.

The CLI prints `PstError` messages as a single line (no traceback) and exits with status 2;
anything else is a bug and keeps its traceback.
"""


class PstError(Exception):
    """An error caused by input, configuration or environment, not by a bug in pst."""


class ConfigError(PstError, ValueError):
    """A configuration value is missing, unknown or out of range."""


class DataError(PstError, ValueError):
    """A data file or store artifact is missing or malformed (the message names file and row)."""


class TeacherError(PstError):
    """A teacher endpoint refused or failed a request in a way retries cannot fix."""
