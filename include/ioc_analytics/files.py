"""Writing a local file whole, so that a reader sees the old content or the new, never half.

``tempfile`` creates its files with mode 0600, whatever the process umask, and a rename keeps
that mode: an export, a report or a dashboard written that way cannot be read by a BI tool or a
web server running as another user. The temporary file here is created with mode 0666 and the
kernel takes the umask off it, as for any file the process creates (0644 under umask 022).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a hidden temporary file in its folder, then rename it
    into place. The file's mode follows the process umask."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
