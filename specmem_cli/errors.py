"""User-facing errors.

Anything a user can fix (bad CSV, unknown dataset, corrupt checkpoint, wrong config key) is raised
as a :class:`SpecmemError` whose message is one line naming the problem and the fix. The CLI turns
it into that line on stderr and a non-zero exit code, never a traceback.
"""


class SpecmemError(Exception):
    """A problem the user can fix; ``str(error)`` is the one-line message to show."""

    exit_code = 1


class DataError(SpecmemError):
    """The input data (CSV, dataset name, download) cannot be used as given."""


class ConfigError(SpecmemError):
    """The experiment configuration is invalid (unknown key, wrong type, bad value)."""


class CheckpointError(SpecmemError):
    """A checkpoint is missing, corrupt, truncated, incomplete or not a specmem checkpoint."""
