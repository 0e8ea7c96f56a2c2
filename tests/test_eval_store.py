"""sas_trl.evaluation.store: the samples file read back; damage anywhere is one error naming the file and line."""

from __future__ import annotations

import json

import pytest

from sas_trl.errors import UserError
from sas_trl.evaluation.store import SampleStore

HEADER = {"model": "m", "seed": 0}
GOOD = {"benchmark": "b", "id": "0", "sample": 0, "correct": 1.0, "tokens": 3, "finish": "stop", "text": "3"}


def write(path, *lines: bytes) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def dumps(record) -> bytes:
    return json.dumps(record).encode()


def test_a_store_reads_back_what_it_wrote_and_drops_a_cut_last_line(tmp_path):
    path = tmp_path / "s.jsonl"
    store = SampleStore(path, HEADER)
    store.append([GOOD, {**GOOD, "sample": 1, "token_ids": [1, 2]}])
    with open(path, "ab") as f:
        f.write(b'{"benchmark": "b", "id"')  # a crash mid-write
    again = SampleStore(path, HEADER)
    assert set(again.records) == {("b", "0", 0), ("b", "0", 1)}
    assert path.read_bytes().endswith(b"}\n")  # the partial line is gone


@pytest.mark.parametrize(
    "line, message",
    [
        (b"{not json", "line 3: not a JSON line"),
        (b"\xff\xfe garbage", "line 3: not UTF-8 text"),
        (b"", "line 3: not a JSON line"),  # a blank line in the middle
        (b"[1, 2]", "line 3: expected a JSON object, got list"),
        (b'"text"', "line 3: expected a JSON object, got str"),
        (dumps({k: v for k, v in GOOD.items() if k != "finish"}), "line 3: no field 'finish'"),
        (dumps({k: v for k, v in GOOD.items() if k != "sample"}), "line 3: no field 'sample'"),
        (dumps({**GOOD, "sample": "1"}), "line 3: field 'sample' has the wrong type"),
        (dumps({**GOOD, "sample": True}), "line 3: field 'sample' has the wrong type"),
        (dumps({**GOOD, "id": 0}), "line 3: field 'id' has the wrong type"),
        (dumps({**GOOD, "correct": "yes"}), "line 3: field 'correct' has the wrong type"),
        (dumps({**GOOD, "tokens": 2.5}), "line 3: field 'tokens' has the wrong type"),
        (dumps({**GOOD, "text": None}), "line 3: field 'text' has the wrong type"),
        (dumps({**GOOD, "sample": -1}), "line 3: fields 'sample' and 'tokens' must be >= 0"),
        (dumps({**GOOD, "token_ids": ["a"]}), "line 3: field 'token_ids' must be a list of token ids"),
        (dumps({**GOOD, "token_ids": 5}), "line 3: field 'token_ids' must be a list of token ids"),
    ],
)
def test_a_damaged_line_anywhere_names_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "s.jsonl"
    write(path, dumps({"header": HEADER}), dumps(GOOD), line, dumps({**GOOD, "sample": 2}))
    with pytest.raises(UserError, match=message) as err:
        SampleStore(path, HEADER)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "first",
    [b"not json at all", b'{"benchmark": "a"}', b'{"header": [1]}', b"[]", b"\xff"],
)
def test_a_file_without_a_header_is_not_a_samples_file(tmp_path, first):
    path = tmp_path / "s.jsonl"
    write(path, first, dumps(GOOD))
    with pytest.raises(UserError, match=r"(no header|line 1: not)"):
        SampleStore(path, HEADER)
    assert path.read_bytes() == first + b"\n" + dumps(GOOD) + b"\n"  # nothing the user made is touched


def test_a_folder_in_place_of_the_file_or_of_its_folder(tmp_path):
    (tmp_path / "s.jsonl").mkdir()
    with pytest.raises(UserError, match="is a folder where the samples file goes"):
        SampleStore(tmp_path / "s.jsonl", HEADER)
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is an existing file, not a folder"):
        SampleStore(tmp_path / "f" / "s.jsonl", HEADER)
