"""The project's one user-error type, and the one message for a full disk.

A `UserError` is a problem the user can fix (a recipe key, a flag, a file, a column, a value). The command
line prints its message on one line and exits with code 2, without a traceback. Raise it before any model
or data work starts wherever the problem can be seen that early.
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem with user input, reported as one line naming the field, file, column or value."""


class RecipeError(UserError):
    """A problem with a recipe file or a `sas-trl train` flag."""


# --------------------------------------------------------------------------------------------------
# A full disk: what was saved, what was not, how much space is needed
# --------------------------------------------------------------------------------------------------

# How a full disk reads in the errors of the libraries that write for us: OSError's errno, and the text of
# safetensors' (Rust: StorageFull, os error 28) and torch's errors, which carry no errno.
_NO_SPACE_TEXTS = ("No space left on device", "StorageFull", "Disk quota exceeded", "os error 28", "code: 28")


def is_disk_full(err: BaseException) -> bool:
    """Whether `err` (or an error it was raised from) says the disk or the quota is full."""
    import errno

    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(err) for text in _NO_SPACE_TEXTS):
            return True
        err = err.__cause__ or err.__context__
    return False


def size_text(size: float) -> str:
    """Bytes for a person: 512 B, 3.4 MB, 2.1 GB."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def disk_full_error(folder, saved: str, not_saved: str, needed: float | None) -> UserError:
    """The one-line error for a full disk while writing into `folder`: what was saved, what was not, the space
    needed (when known) and free now."""
    import shutil
    from pathlib import Path

    where = Path(folder)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = f"{size_text(shutil.disk_usage(where).free)} free now"
    except OSError:
        free = "free space unknown"
    need = f"about {size_text(needed)} is needed" if needed else "more space is needed"
    return UserError(
        f"the disk of {folder} is full ({free}): saved: {saved}; not saved: {not_saved}; {need}: free some "
        "space (or point the folder elsewhere) and run the same command again"
    )
