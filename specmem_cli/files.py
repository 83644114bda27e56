"""What a file specmem writes looks like on disk, whichever layer writes it."""

from __future__ import annotations

import os


def _process_umask() -> int:
    mask = os.umask(0)  # os.umask can only be read by setting it
    os.umask(mask)
    return mask


# A new file's permissions, as the shell would give it: temporary files are created private (0600), and a
# file renamed into place keeps that unless set, which colleagues sharing a directory could not read.
NEW_FILE_MODE = 0o666 & ~_process_umask()
