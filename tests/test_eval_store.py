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


def test_a_store_reads_back_what_it_wrote_and_drops_a_cut_last_line(tmp_path, capsys):
    path = tmp_path / "s.jsonl"
    store = SampleStore(path, HEADER)
    store.append([GOOD, {**GOOD, "sample": 1, "token_ids": [1, 2]}])
    with open(path, "ab") as f:
        f.write(b'{"benchmark": "b", "id"')  # a crash mid-write
    cut = path.read_bytes()
    again = SampleStore(path, HEADER)
    assert set(again.records) == {("b", "0", 0), ("b", "0", 1)}
    assert path.read_bytes() == cut  # reading changes nothing: the file is not accepted yet
    again.append([{**GOOD, "sample": 2}])  # accepted: the partial line goes, then the new sample follows
    assert path.read_bytes() == cut[: cut.rfind(b"\n") + 1] + dumps({**GOOD, "sample": 2}) + b"\n"
    assert "dropped its last line (23 bytes), cut short when a run stopped" in capsys.readouterr().out
    assert set(SampleStore(path, HEADER).records) == {("b", "0", 0), ("b", "0", 1), ("b", "0", 2)}


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


# --------------------------------------------------------------------------------------------------
# Nothing is changed before the file is accepted; nothing is written through a link
# --------------------------------------------------------------------------------------------------

FOREIGN = {
    "a foreign file, no newline at all": b"my notes, not samples",
    "a foreign file with a cut last line": b"line one\nline two without newline",
    "a foreign jsonl": b'{"a": 1}\n{"b": 2}',
    "another run's samples, cut last line": dumps({"header": {"model": "other", "seed": 0}}) + b"\n" + b'{"bench',
    "a damaged middle line and a cut last line": dumps({"header": HEADER}) + b"\n{oops\n" + dumps(GOOD)[:10],
    "binary": b"\x00\x01\x02\xff\n\xfe",
}


@pytest.mark.parametrize("case", list(FOREIGN))
@pytest.mark.parametrize("linked", [False, True], ids=["file", "link to a file outside"])
def test_a_refused_file_is_left_byte_for_byte(tmp_path, case, linked):
    out, outside = tmp_path / "out", tmp_path / "elsewhere" / "mine.jsonl"
    out.mkdir()
    outside.parent.mkdir()
    target = outside if linked else out / "s.jsonl"
    target.write_bytes(FOREIGN[case])
    if linked:
        (out / "s.jsonl").symlink_to(outside)
    with pytest.raises(UserError) as refused:
        SampleStore(out / "s.jsonl", HEADER)
    assert target.read_bytes() == FOREIGN[case]
    assert (out / "s.jsonl").is_symlink() == linked
    if linked:  # refused before it is read: appending would write outside the output folder
        assert f"{out / 's.jsonl'} is a symbolic link (to {outside})" in str(refused.value)
        assert "never through a link" in str(refused.value) and "Put a copy of the file there" in str(refused.value)


def test_a_link_to_a_valid_samples_file_is_refused_and_overwrite_replaces_only_the_link(tmp_path, capsys):
    out, outside = tmp_path / "out", tmp_path / "elsewhere.jsonl"
    SampleStore(outside, HEADER).append([GOOD])
    before = outside.read_bytes()
    out.mkdir()
    (out / "s.jsonl").symlink_to(outside)
    with pytest.raises(UserError, match="is a symbolic link"):
        SampleStore(out / "s.jsonl", HEADER)
    store = SampleStore(out / "s.jsonl", HEADER, overwrite=True)
    store.append([GOOD])
    assert outside.read_bytes() == before  # the link's target is unchanged
    assert not (out / "s.jsonl").is_symlink() and set(SampleStore(out / "s.jsonl", HEADER).records) == {("b", "0", 0)}
    assert "was a symbolic link (to " in capsys.readouterr().out
    # a dangling link: nothing is created at its target either
    (out / "t.jsonl").symlink_to(tmp_path / "nowhere" / "x.jsonl")
    with pytest.raises(UserError, match="is a symbolic link"):
        SampleStore(out / "t.jsonl", HEADER)
    assert not (tmp_path / "nowhere").exists()
