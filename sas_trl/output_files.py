"""Files written into an output folder, never through a symbolic link out of it.

An output folder is the user's to name (it may itself be a link, to a larger disk, say). What sas-trl writes
inside it never follows a link: a file that is a link is replaced by the file written (the link's target stays as
it was, and a note says so); a linked folder on the way to it, or a link where a file is appended to (a samples
file, a log), is refused with a `UserError` naming the link, before anything is written. Whole files are written
to a temporary file in the same folder and renamed over the old one, so a crash never leaves half a file.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import UserError


def link_message(path: Path, folder: Path) -> str:
    """`PATH is a symbolic link (to TARGET)`, and that nothing is written through it out of `folder`."""
    return (
        f"{path} is a symbolic link (to {os.readlink(path)}); sas-trl writes only inside the output folder "
        f"{folder}, never through a link"
    )


def check_folder(root: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """`folder` when no folder from below `root` down to `folder` itself is a symbolic link (a `UserError` naming
    the link); for folders that commands started later will write into (`root` itself may be a link)."""
    root, folder = Path(root), Path(folder)
    current = root
    for part in folder.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            raise UserError(f"{link_message(current, root)}; replace the link by a folder, or use another one")
    return folder


def inside(folder: str | os.PathLike, name: str | os.PathLike) -> Path:
    """`folder / name`, its parent folders created, after checking that none of them below `folder` is a symbolic
    link (`check_folder`). The file itself may be a link: see `write_bytes` and `for_append`."""
    path = Path(folder) / name
    check_folder(folder, path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def for_append(folder: str | os.PathLike, name: str | os.PathLike, what: str = "this file") -> Path:
    """`inside(folder, name)` for a file that is read and appended to: a link there is refused, naming `what`
    the file is for, since appending would write to the link's target."""
    path = inside(folder, name)
    if path.is_symlink():
        raise UserError(
            f"{link_message(path, Path(folder))}: {what} is appended to in place. Put a copy of the file there "
            "instead of a link, or use another output folder"
        )
    return path


def write_bytes(folder: str | os.PathLike, name: str | os.PathLike, data: bytes) -> Path:
    """Write `folder / name` whole (temporary file, then rename); a link there is replaced, its target untouched."""
    path = inside(folder, name)
    link = os.readlink(path) if path.is_symlink() else None
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from the group
        os.replace(temporary, path)  # replaces a link itself, never its target
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if link is not None:
        print(
            f"sas-trl: {path} was a symbolic link (to {link}); wrote the file in its place, the link's target is "
            "unchanged",
            flush=True,
        )
    return path


def write_text(folder: str | os.PathLike, name: str | os.PathLike, text: str) -> Path:
    """`write_bytes` of UTF-8 text."""
    return write_bytes(folder, name, text.encode("utf-8"))


def save_figure(figure: Any, path: str | os.PathLike, **savefig: Any) -> Path:
    """A matplotlib figure saved as `path` (format from its suffix) through `write_bytes`."""
    path = Path(path)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=path.suffix.lstrip(".") or "png", **savefig)
    return write_bytes(path.parent, path.name, buffer.getvalue())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
