"""User-facing errors.

Anything a user can fix (bad CSV, unknown dataset, corrupt checkpoint, wrong config key) is raised
as a :class:`SpecmemError` whose message is one line naming the problem and the fix. The CLI turns
it into that line on stderr and a non-zero exit code, never a traceback.
"""

import errno


class SpecmemError(Exception):
    """A problem the user can fix; ``str(error)`` is the one-line message to show."""

    exit_code = 1


class DataError(SpecmemError):
    """The input data (CSV, dataset name, download) cannot be used as given."""


class ConfigError(SpecmemError):
    """The experiment configuration is invalid (unknown key, wrong type, bad value)."""


class CheckpointError(SpecmemError):
    """A checkpoint is missing, corrupt, truncated, incomplete or not a specmem checkpoint."""


_OS_ADVICE = {
    errno.ENOSPC: "no space left on the device; free space or write somewhere else, then rerun (finished runs are kept)",
    errno.EDQUOT: "disk quota exceeded; free space or write somewhere else, then rerun (finished runs are kept)",
    errno.EACCES: "permission denied; choose a location you can write to",
    errno.EPERM: "operation not permitted (an immutable or protected path?); choose another location",
    errno.EROFS: "read-only file system; choose a writable location",
    errno.ENOTDIR: "a path component is a file, not a directory; give a directory path",
    errno.EISDIR: "is a directory, not a file; give a file path",
    errno.EEXIST: "already exists as something else; choose another path",
    errno.ENOENT: "no such file or directory (deleted while specmem ran?); check the path and rerun",
}


def describe_os_error(exc: OSError) -> str:
    """One line for an operating-system failure (full disk, read-only directory, path that is a file)."""
    where = exc.filename or "a file specmem was writing"
    advice = _OS_ADVICE.get(exc.errno or -1, f"{exc.strerror or type(exc).__name__}")
    return f"{where}: {advice}"
