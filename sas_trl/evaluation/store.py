"""The samples file: one JSON line per finished, graded sample, appended and flushed as it completes.

The first line is a header with the settings that decide what a sample means (model and its weights, sampling,
grading). A re-run reads the file back, checks the header against its own settings and every line's fields, and
skips the samples already there, so a crash or Ctrl-C loses at most the batch in flight. A last line cut short by
a crash (no newline) is dropped, once the file is accepted and before the first new sample is appended; damage
anywhere else is refused with the file and line, never repaired silently. The file is never a symbolic link: one
is refused (appending would write to its target), or replaced by a new file with `--overwrite`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import UserError, disk_full_error, is_disk_full
from ..output_files import for_append, write_text

Key = tuple[str, str, int]

# What every record holds (field -> accepted types), as `sampling.sample_and_grade` writes it.
RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "benchmark": (str,),
    "id": (str,),
    "sample": (int,),
    "correct": (int, float, type(None)),
    "tokens": (int,),
    "finish": (str,),
    "text": (str,),
}
# What a header entry means, for the message when it differs.
HEADER_HINTS = {"weights": "the model's files changed at the same path"}


def check_record(record: Any, where: str) -> dict:
    """`record` if it has every field of `RECORD_FIELDS` with its type (and integer `token_ids` when present);
    else a UserError starting with `where` (the file and line)."""
    if not isinstance(record, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name, types in RECORD_FIELDS.items():
        if name not in record:
            raise UserError(f"{where}: no field {name!r}; not a sample written by sas-trl")
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, types):
            raise UserError(f"{where}: field {name!r} has the wrong type ({value!r})")
    if record["sample"] < 0 or record["tokens"] < 0:
        raise UserError(f"{where}: fields 'sample' and 'tokens' must be >= 0")
    ids = record.get("token_ids")
    if ids is not None and not (isinstance(ids, list) and all(type(t) is int and t >= 0 for t in ids)):
        raise UserError(f"{where}: field 'token_ids' must be a list of token ids (integers >= 0)")
    return record


class SampleStore:
    """Append-only jsonl of sample records (`benchmark`, `id`, `sample`, ...), keyed by (benchmark, id, sample)."""

    def __init__(self, path: str | Path, header: dict[str, Any], overwrite: bool = False):
        self.path = Path(path)
        self.header = header
        self.records: dict[Key, dict] = {}
        self._complete: int | None = None  # a last line cut short: the length to cut the file to before appending
        if self.path.is_dir() and not self.path.is_symlink():
            raise UserError(f"{self.path} is a folder where the samples file goes; use another --output_dir")
        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise UserError(f"--output_dir {str(self.path.parent)!r} is an existing file, not a folder")
        if os.path.lexists(self.path) and not overwrite:
            for_append(self.path.parent, self.path.name, "the samples file")  # a link: refused, nothing read
            self._load()
        else:  # a new file, or --overwrite: a link there is replaced, never written through
            write_text(self.path.parent, self.path.name, json.dumps({"header": header}) + "\n")

    def _load(self) -> None:
        """Read the file back and check it whole; nothing is changed here (a cut last line is dropped only when
        the first sample is appended, once every check of the file and its problems has passed)."""
        raw = self.path.read_bytes()
        complete = raw[: raw.rfind(b"\n") + 1]  # a crash mid-write leaves a partial last line
        if len(complete) != len(raw):
            self._complete = len(complete)
        lines = complete.split(b"\n")[:-1]
        found = self._line(lines[0], 1) if lines else None
        if not isinstance(found, dict) or not isinstance(found.get("header"), dict):
            raise UserError(f"{self.path} is not a samples file of sas-trl (no header); use another --output_dir")
        found = found["header"]
        changed = {k: (found.get(k), v) for k, v in self.header.items() if found.get(k) != v}
        if changed:
            what = ", ".join(
                f"{k}: {old!r} -> {new!r}" + (f" ({HEADER_HINTS[k]})" if k in HEADER_HINTS else "")
                for k, (old, new) in changed.items()
            )
            raise UserError(
                f"{self.path} holds samples drawn with other settings ({what}); pass another --output_dir, "
                "or --overwrite to discard them"
            )
        for number, line in enumerate(lines[1:], start=2):
            record = check_record(self._line(line, number), f"{self.path} line {number}")
            self.records[(record["benchmark"], record["id"], record["sample"])] = record

    def _line(self, line: bytes, number: int) -> Any:
        try:
            return json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise UserError(f"{self.path} line {number}: not UTF-8 text ({err.reason}); damaged file?") from None
        except json.JSONDecodeError as err:
            raise UserError(
                f"{self.path} line {number}: not a JSON line ({err.msg}); damaged file? pass another --output_dir, "
                "or --overwrite to discard it"
            ) from None

    def __contains__(self, key: Key) -> bool:
        return key in self.records

    def get(self, key: Key) -> dict | None:
        return self.records.get(key)

    def append(self, records: list[dict]) -> None:
        """Write records and make them durable before returning (flush + fsync: a crash right after keeps them)."""
        if self._complete is not None:  # the file was accepted: drop the line a crash cut short, then append
            with open(self.path, "r+b") as f:
                cut = f.seek(0, os.SEEK_END) - self._complete
                f.truncate(self._complete)
            print(
                f"sas-trl: {self.path}: dropped its last line ({cut} bytes), cut short when a run stopped", flush=True
            )
            self._complete = None
        text = "".join(json.dumps(record) + "\n" for record in records)
        size = self.path.stat().st_size
        try:
            with open(self.path, "a") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            if not is_disk_full(err):
                raise
            os.truncate(self.path, size)  # no half line left behind: the file holds whole samples only
            raise disk_full_error(
                self.path.parent,
                saved=f"{self.path} with its {len(self.records)} earlier samples (the same command resumes from them)",
                not_saved=f"the last {len(records)} sample(s)",
                needed=len(text.encode()),
            ) from err
        for record in records:
            self.records[(record["benchmark"], record["id"], record["sample"])] = record
