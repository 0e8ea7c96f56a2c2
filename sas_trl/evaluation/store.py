"""The samples file: one JSON line per finished, graded sample, appended and flushed as it completes.

The first line is a header with the settings that decide what a sample means (model, sampling, grading). A
re-run reads the file back, checks the header against its own settings and skips the samples already there,
so a crash or Ctrl-C loses at most the batch in flight. A last line cut short by a crash is dropped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import UserError

Key = tuple[str, str, int]


class SampleStore:
    """Append-only jsonl of sample records (`benchmark`, `id`, `sample`, ...), keyed by (benchmark, id, sample)."""

    def __init__(self, path: str | Path, header: dict[str, Any], overwrite: bool = False):
        self.path = Path(path)
        self.header = header
        self.records: dict[Key, dict] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and not overwrite:
            self._load()
        else:
            self.path.write_text(json.dumps({"header": header}) + "\n")

    def _load(self) -> None:
        raw = self.path.read_bytes()
        complete = raw[: raw.rfind(b"\n") + 1]  # a crash mid-write leaves a partial last line
        if len(complete) != len(raw):
            with open(self.path, "r+b") as f:
                f.truncate(len(complete))
        lines = complete.decode().splitlines()
        if not lines or "header" not in json.loads(lines[0]):
            raise UserError(f"{self.path} is not a samples file of sas-trl (no header); use another --output_dir")
        found = json.loads(lines[0])["header"]
        changed = {k: (found.get(k), v) for k, v in self.header.items() if found.get(k) != v}
        if changed:
            what = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise UserError(
                f"{self.path} holds samples drawn with other settings ({what}); pass another --output_dir, "
                "or --overwrite to discard them"
            )
        for line in lines[1:]:
            record = json.loads(line)
            self.records[(record["benchmark"], record["id"], record["sample"])] = record

    def __contains__(self, key: Key) -> bool:
        return key in self.records

    def get(self, key: Key) -> dict | None:
        return self.records.get(key)

    def append(self, records: list[dict]) -> None:
        """Write records and make them durable before returning (flush + fsync: a crash right after keeps them)."""
        with open(self.path, "a") as f:
            for record in records:
                f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for record in records:
            self.records[(record["benchmark"], record["id"], record["sample"])] = record
