"""scripts/trl_peer_suite.py without a TRL checkout: a fake TRL test module, staged and run in one mode."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import trl_peer_suite as peer  # noqa: E402

QWEN2 = "trl-internal-testing/tiny-Qwen2ForCausalLM-2.5"

FAKE_MODULE = """
import pytest
from datasets import load_dataset
from transformers import AutoConfig, AutoTokenizer

from trl import GRPOConfig, GRPOTrainer

from .testing_utils import require_fake


def test_classes_swapped(tmp_path):
    assert GRPOTrainer.__name__ == "SASGRPOTrainer"
    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    assert (type(args).__mro__[1].__name__, args.sas_ratio) == ("SASConfig", 0.0)


def test_steps_capped(tmp_path):
    assert GRPOConfig(output_dir=str(tmp_path), use_cpu=True, max_steps=50).max_steps == 6
    assert GRPOConfig(output_dir=str(tmp_path), use_cpu=True, max_steps=3).max_steps == 3


def test_dataset_redirected():
    train = load_dataset("trl-internal-testing/zen", "standard_prompt_only", split="train")
    assert (len(train), train.column_names) == (17, ["prompt"])
    both = load_dataset("trl-internal-testing/zen", "conversational_prompt_only")
    assert len(both["test"]) == 2 and both["test"][0]["prompt"][0]["role"] == "user"


def test_model_id_redirected():
    config = AutoConfig.from_pretrained("{qwen2}")
    assert (config.model_type, config.hidden_size) == ("qwen2", 8)
    assert AutoTokenizer.from_pretrained("{qwen2}").eos_token == "<|endoftext|>"


def test_fails():
    assert 1 == 2, "meant to fail"


@require_fake
def test_skipped_by_shimmed_helper():
    pass


class TestGRPOTrainerVLM:
    def test_vlm(self):
        raise AssertionError("deselected, never runs")
""".replace("{qwen2}", QWEN2)

FAKE_HELPERS = """
import pytest
from trl.import_utils import is_peer_suite_fake_thing_available  # absent from TRL: the plugin shims it

from .testing_constants import REASON

require_fake = pytest.mark.skipif(not is_peer_suite_fake_thing_available(), reason=REASON)
"""


def fake_trl(root: Path) -> Path:
    tests = root / "tests"
    tests.mkdir(parents=True)
    (tests / "test_grpo_trainer.py").write_text(FAKE_MODULE)
    (tests / "testing_utils.py").write_text(FAKE_HELPERS)
    (tests / "testing_constants.py").write_text('REASON = "fake thing missing"\n')
    (tests / "conftest.py").write_text("")
    (tests / "test_unrelated.py").write_text("raise ImportError('never staged')\n")
    return root


@pytest.mark.parametrize(
    ("text", "cap", "expected"),
    [
        ("stock", 0, peer.Mode("stock", False, None, 0)),
        ("sas0", 0, peer.Mode("sas0", True, 0.0, 0)),
        ("sas", 0, peer.Mode("sas", True, None, 0)),
        ("sas@6", 0, peer.Mode("sas@6", True, None, 6)),
        ("sas:0.5@3", 0, peer.Mode("sas:0.5@3", True, 0.5, 3)),
        ("sas0", 6, peer.Mode("sas0@6", True, 0.0, 6)),
    ],
)
def test_parse_mode(text, cap, expected):
    assert peer.parse_mode(text, cap) == expected


def test_parse_mode_rejects_unknown():
    with pytest.raises(ValueError, match="unknown mode"):
        peer.parse_mode("grpo")


def test_stock_mode_leaves_trl_classes():
    assert peer.peer_classes("stock", None, 0) == (None, None)


def test_stage_copies_the_module_and_what_it_imports(tmp_path):
    src = fake_trl(tmp_path / "trl")
    staged = peer.stage(src, tmp_path / "work")
    names = sorted(p.name for p in staged.parent.iterdir())
    assert names == ["__init__.py", "conftest.py", "test_grpo_trainer.py", "testing_constants.py", "testing_utils.py"]
    assert sorted(p.name for p in (src / "tests").iterdir())[-1] == "testing_utils.py"  # source untouched
    with pytest.raises(FileNotFoundError, match="TRL source checkout"):
        peer.stage(tmp_path / "nothing", tmp_path / "work2")


def test_summarize_counts_each_outcome_once(tmp_path):
    records = [
        ("a", "setup", "passed", False, ""),
        ("a", "call", "passed", False, ""),
        ("a", "teardown", "passed", False, ""),
        ("b", "setup", "passed", False, ""),
        ("b", "call", "failed", False, "AssertionError: Parameter x has not changed."),
        ("b", "teardown", "passed", False, ""),
        ("c", "setup", "failed", False, "fixture broke"),
        ("d", "setup", "skipped", False, "test requires vllm"),
        ("e", "call", "skipped", True, "known issue"),
        ("f", "call", "passed", True, ""),
        ("g", "deselected", "deselected", False, "needs a GPU"),
        ("<session>", "shims", "info", False, "['is_joblib_available']"),
    ]
    lines = [
        json.dumps({"nodeid": n, "when": w, "outcome": o, "xfail": x, "message": m}) + "\n"
        for n, w, o, x, m in records
    ]
    forward, reverse = tmp_path / "results.jsonl", tmp_path / "results-reverse.jsonl"
    forward.write_text("".join(lines[:8]))
    reverse.write_text("".join(lines[3:]))  # a reverse run that met the forward one: "b" ran in both
    summary = peer.summarize(forward, reverse)
    assert summary["counts"] == {
        "passed": 1,
        "failed": 1,
        "error": 1,
        "skipped": 1,
        "xfailed": 1,
        "xpassed": 1,
        "deselected": 1,
        "collected": 7,
        "ran": 5,
    }
    assert summary["failing"] == {"b": "AssertionError: Parameter x has not changed.", "c": "fixture broke"}


@pytest.mark.slow  # one pytest process importing TRL: ~8 s of CPU
def test_fake_module_runs_swapped_capped_and_offline(tmp_path):
    """The whole path in one pytest process: stand-ins, staging, the plugin's swap, redirects, report."""
    from sas_trl.tiny import build_tokenizer

    standins = peer.build_standins(
        tmp_path / "cache",
        models={QWEN2: peer.MODELS[QWEN2]},
        tokenizer_factory=lambda kind, template: build_tokenizer(),
    )
    staged = peer.stage(fake_trl(tmp_path / "trl"), tmp_path / "work")
    run = peer.run_mode(peer.parse_mode("sas0@6"), staged, standins, tmp_path / "out", timeout=120)

    log = (tmp_path / "out" / "sas0-cap6" / "pytest.log").read_text()
    assert run["counts"] == {
        "passed": 4,
        "failed": 1,
        "error": 0,
        "skipped": 1,
        "xfailed": 0,
        "xpassed": 0,
        "deselected": 1,
        "collected": 7,
        "ran": 5,
    }, log[-3000:]
    assert list(run["failing"]) == ["tests/test_grpo_trainer.py::test_fails"]
    assert "meant to fail" in run["failing"]["tests/test_grpo_trainer.py::test_fails"]
    assert run["tests"]["tests/test_grpo_trainer.py::test_skipped_by_shimmed_helper"]["message"].endswith(
        "fake thing missing"
    )
    assert json.loads((tmp_path / "out" / "sas0-cap6" / "summary.json").read_text())["counts"]["passed"] == 4
