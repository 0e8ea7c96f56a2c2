"""`sas-trl eval` and sas_trl.evaluation: benchmarks, backends, the samples file, resume, AES, errors.

The transformers backend runs end to end on the tiny random-init model (tiny budgets); exact metrics are
checked with a scripted backend whose correctness and lengths are known.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sas_trl.cli import main
from sas_trl.errors import UserError
from sas_trl.evaluation import EvalConfig, SamplingSettings, run_eval
from sas_trl.evaluation.backends import Completion
from sas_trl.evaluation.datasets import (
    addition_items,
)
from sas_trl.evaluation.store import SampleStore

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "eval"
MATH500 = FIXTURES / "math500.jsonl"
BASELINE = FIXTURES / "baseline_results.json"
QUICK = ["--n", "2", "--max_tokens", "32", "--no_progress", "--num_threads", "1"]


def read_samples(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    assert "header" in json.loads(lines[0])
    return [json.loads(line) for line in lines[1:]]


class ScriptedBackend:
    """Answers `(benchmark, id, sample) -> (correct?, tokens)`; records what it was asked for."""

    def __init__(self, script, answers: dict, batch_size: int = 4, fail_after: int | None = None):
        self.script, self.answers, self.batch_size, self.fail_after = script, answers, batch_size, fail_after
        self.asked: list[tuple] = []

    def generate(self, requests, settings):
        for batch_index, start in enumerate(range(0, len(requests), self.batch_size)):
            if self.fail_after is not None and batch_index >= self.fail_after:
                raise RuntimeError("simulated crash")
            batch = requests[start : start + self.batch_size]
            out = []
            for r in batch:
                self.asked.append(r.key)
                correct, tokens = self.script(r.key)
                answer = self.answers[r.key[:2]] if correct else "-1"
                finish = "length" if tokens >= settings.max_tokens else "stop"
                out.append(Completion(r.key, f"steps\n\n</think>\\boxed{{{answer}}}", [7] * tokens, finish))
            yield out


def addition_answers(n: int) -> dict:
    return {("addition", item.id): item.answers[0] for item in addition_items(n)}


def test_unknown_benchmark_lists_the_known_ones(tiny_model_dir, tmp_path, capsys):
    code = main(["eval", "--model", str(tiny_model_dir), "--benchmarks", "aime24,nope", "--output_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "unknown benchmark(s) nope" in err and "addition" in err and "math500" in err
    assert "Traceback" not in err and not (tmp_path / "eval_samples.jsonl").exists()


@pytest.mark.parametrize("kind", ["missing", "file", "no_config", "bad_config"])
def test_unreadable_model_fails_before_generation(kind, tmp_path, capsys):
    model = tmp_path / "model"
    if kind == "file":
        model.write_text("x")
    elif kind in ("no_config", "bad_config"):
        model.mkdir()
        if kind == "bad_config":
            (model / "config.json").write_text("{not json")
    out = tmp_path / "out"
    code = main(["eval", "--model", str(model), "--benchmarks", "addition", "--output_dir", str(out), *QUICK])
    err = capsys.readouterr().err
    expected = {
        "missing": "no such folder",
        "file": "is a file",
        "no_config": "no config.json",
        "bad_config": "config.json is not valid JSON",
    }
    assert code == 2 and expected[kind] in err and str(model) in err
    assert not out.exists()  # nothing started


def test_bad_settings_and_baseline_fail_early(tiny_model_dir, tmp_path, capsys):
    base = ["eval", "--model", str(tiny_model_dir), "--benchmarks", "addition", "--output_dir", str(tmp_path / "o")]
    assert main([*base, *QUICK, "--pass_k", "4"]) == 2
    assert "1..n" in capsys.readouterr().err
    assert main([*base, *QUICK, "--top_p", "0"]) == 2
    missing = tmp_path / "nope.json"
    assert main([*base, *QUICK, "--baseline", str(missing)]) == 2
    assert "not a readable eval_results.json" in capsys.readouterr().err
    only_math = tmp_path / "math_only.json"
    only_math.write_text(json.dumps({"benchmarks": {"math500": {"pass@1": 0.5, "mean_tokens": 10}}}))
    assert main([*base, *QUICK, "--baseline", str(only_math)]) == 2
    assert "no results for addition" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_eval_tiny_model_end_to_end(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["eval", "--model", str(tiny_model_dir), "--benchmarks", "addition,math500", "--limit", "3"]
    args += ["--source", f"math500={MATH500}", "--pass_k", "2", "--output_dir", str(out), *QUICK]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert "| addition | 3 |" in stdout and "| math500 | 2 |" in stdout and "| **average** | 5 |" in stdout
    assert "pass@2 (%)" in stdout and "AES" not in stdout

    results = json.loads((out / "eval_results.json").read_text())
    assert results["backend"] == "TransformersBackend" and results["settings"]["max_tokens"] == 32
    assert (out / "eval_results.md").read_text() in stdout
    for name, problems in [("addition", 3), ("math500", 2)]:
        r = results["benchmarks"][name]
        assert r["problems"] == problems and r["samples"] == 2 * problems
        assert 0 <= r["pass@1"] <= r["pass@2"] <= 1 and 1 <= r["mean_tokens"] <= 32 and 0 <= r["truncated"] <= 1
    avg = results["average"]
    assert avg["mean_tokens"] == pytest.approx(
        (results["benchmarks"]["addition"]["mean_tokens"] + results["benchmarks"]["math500"]["mean_tokens"]) / 2
    )

    samples = read_samples(out / "eval_samples.jsonl")
    assert sorted((s["benchmark"], s["id"], s["sample"]) for s in samples) == sorted(
        [("addition", str(i), j) for i in range(3) for j in range(2)]
        + [("math500", f"test/algebra/{x}.json", j) for x in "ab" for j in range(2)]
    )
    for s in samples:
        assert s["finish"] in ("stop", "length") and s["correct"] in (0.0, 1.0)
        assert s["tokens"] == 32 if s["finish"] == "length" else 1 <= s["tokens"] <= 32  # EOS counts as a token
    truncated = sum(s["finish"] == "length" for s in samples if s["benchmark"] == "addition") / 6
    assert results["benchmarks"]["addition"]["truncated"] == pytest.approx(truncated)


def config(model, out, **kw) -> EvalConfig:
    kw = {"benchmarks": ["addition"], "n": 2, "limit": 4, "progress": False, **kw}
    return EvalConfig(model=str(model), sampling=SamplingSettings(max_tokens=32), output_dir=str(out), **kw)


def test_crash_keeps_finished_samples_and_rerun_resumes(tiny_model_dir, tmp_path):
    answers = addition_answers(4)
    script = lambda key: (key[2] == 0, 10 + int(key[1]))  # noqa: E731 - sample 0 right, lengths 10..13
    crashing = ScriptedBackend(script, answers, batch_size=3, fail_after=1)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_eval(config(tiny_model_dir, tmp_path), backend=crashing)
    saved = read_samples(tmp_path / "eval_samples.jsonl")
    assert [(s["id"], s["sample"]) for s in saved] == [("0", 0), ("0", 1), ("1", 0)]  # the finished batch

    with open(tmp_path / "eval_samples.jsonl", "a") as f:
        f.write('{"benchmark": "addition", "id": "1", "sam')  # a write cut short by the crash
    resumed = ScriptedBackend(script, answers, batch_size=3)
    results = run_eval(config(tiny_model_dir, tmp_path), backend=resumed)
    assert resumed.asked == [("addition", "1", 1), ("addition", "2", 0), ("addition", "2", 1)] + [
        ("addition", "3", 0),
        ("addition", "3", 1),
    ]
    assert read_samples(tmp_path / "eval_samples.jsonl")[:3] == saved  # not redone
    r = results["benchmarks"]["addition"]
    assert r["samples"] == 8 and r["pass@1"] == pytest.approx(0.5) and r["mean_tokens"] == pytest.approx(11.5)
    assert results["throughput"]["samples"] == 5

    again = ScriptedBackend(script, answers)
    run_eval(config(tiny_model_dir, tmp_path), backend=again)
    assert again.asked == []  # nothing left to do
    more = ScriptedBackend(script, answers)
    results = run_eval(config(tiny_model_dir, tmp_path, n=3), backend=more)  # a larger n draws only the new ones
    assert (
        more.asked == [("addition", str(i), 2) for i in range(4)]
        and results["benchmarks"]["addition"]["samples"] == 12
    )


def test_other_settings_refuse_to_mix_samples(tiny_model_dir, tmp_path):
    answers = addition_answers(4)
    run_eval(config(tiny_model_dir, tmp_path), backend=ScriptedBackend(lambda k: (True, 5), answers))
    changed = config(tiny_model_dir, tmp_path)
    changed.sampling = SamplingSettings(temperature=1.0, max_tokens=32)
    with pytest.raises(UserError, match=r"temperature: 0.6 -> 1.0.*--overwrite"):
        run_eval(changed, backend=ScriptedBackend(lambda k: (True, 5), answers))
    changed.overwrite = True
    fresh = ScriptedBackend(lambda k: (False, 5), answers)
    assert run_eval(changed, backend=fresh)["benchmarks"]["addition"]["pass@1"] == 0.0
    assert len(fresh.asked) == 8
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "eval_samples.jsonl").write_text('{"benchmark": "a"}\n')
    with pytest.raises(UserError, match="no header"):
        SampleStore(tmp_path / "x" / "eval_samples.jsonl", {"model": "m"})


def group_ends(group: int, timeout: float = 10) -> bool:
    """Whether every process of the process group `group` ends within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_ctrl_c_keeps_samples_and_the_same_command_resumes(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    args = ["eval", "--model", str(tiny_model_dir), "--benchmarks", "addition", "--limit", "100", "--n", "2"]
    args += ["--max_tokens", "32", "--batch_size", "2", "--output_dir", str(out), "--num_threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # The eval pauses after 4 saved samples (tests/scripts/eval_paused.py), so the Ctrl-C always lands mid-run.
    mark = tmp_path / "paused"
    script = ROOT / "tests" / "scripts" / "eval_paused.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(mark), "4", "--", *args[1:]],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its grading workers with it, in one group the test can always stop
    )
    samples = out / "eval_samples.jsonl"
    try:
        deadline = time.monotonic() + 120
        while not mark.exists():
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the eval saved no 4 samples in 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert group_ends(proc.pid), "the stopped eval left a process running (a grading worker?)"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group: nothing when the eval stopped cleanly
        proc.wait()
    assert proc.returncode == 130, err.decode()[-2000:]
    assert "run the same command to resume" in err.decode() and "Traceback" not in err.decode()
    done = read_samples(samples)
    assert 4 <= len(done) < 200

    assert main([*args, "--no_progress"]) == 0
    final = read_samples(samples)
    assert final[: len(done)] == done  # kept, not redone
    assert len({(s["id"], s["sample"]) for s in final}) == len(final) == 200


def test_baseline_adds_aes(tiny_model_dir, tmp_path):
    answers = addition_answers(4)
    # Pass@1 0.5 and 50 tokens against the fixture's 0.4 and 100: AES = 0.5 + 3 * 0.25 = 1.25.
    backend = ScriptedBackend(lambda key: (key[2] == 0, 50), answers)
    results = run_eval(config(tiny_model_dir, tmp_path, baseline=str(BASELINE)), backend=backend)
    assert results["average"]["aes"] == pytest.approx(1.25)
    assert results["benchmarks"]["addition"]["aes"] == pytest.approx(1.25)
    assert results["baseline"] == {"path": str(BASELINE), "model": "base-model", "pass@1": 0.4, "mean_tokens": 100.0}
    table = (tmp_path / "eval_results.md").read_text()
    assert (
        "| AES |" in table and "| 1.250 |" in table and "AES against base-model (Pass@1 40.00%, 100.0 tokens)" in table
    )


def test_aes_is_undefined_against_a_zero_baseline(tiny_model_dir, tmp_path):
    backend = ScriptedBackend(lambda key: (True, 5), {("math500", "test/algebra/a.json"): "3"})
    cfg = config(tiny_model_dir, tmp_path, benchmarks=["math500"], sources={"math500": str(MATH500)}, limit=1)
    cfg.baseline = str(BASELINE)
    results = run_eval(cfg, backend=backend)
    assert results["benchmarks"]["math500"]["pass@1"] == 1.0 and results["average"]["aes"] is None  # base Pass@1 0
    assert "| n/a |" in (tmp_path / "eval_results.md").read_text()


def test_aes_cli_against_a_real_baseline_run(tiny_model_dir, tmp_path, capsys):
    base = ["eval", "--model", str(tiny_model_dir), "--benchmarks", "addition", "--limit", "2", *QUICK]
    assert main([*base, "--output_dir", str(tmp_path / "a"), "--temperature", "0"]) == 0
    baseline = json.loads((tmp_path / "a" / "eval_results.json").read_text())
    capsys.readouterr()
    assert (
        main([*base, "--output_dir", str(tmp_path / "b"), "--baseline", str(tmp_path / "a" / "eval_results.json")])
        == 0
    )
    assert "| AES |" in capsys.readouterr().out
    results = json.loads((tmp_path / "b" / "eval_results.json").read_text())
    if baseline["average"]["pass@1"] > 0:
        a, b = results["average"], baseline["average"]
        expected = (b["mean_tokens"] - a["mean_tokens"]) / b["mean_tokens"]
        d_acc = (a["pass@1"] - b["pass@1"]) / b["pass@1"]
        expected += 3 * d_acc if d_acc >= 0 else -5 * abs(d_acc)
        assert results["average"]["aes"] == pytest.approx(expected)
    else:
        assert results["average"]["aes"] is None


def test_vllm_backend_is_refused_without_a_gpu(tiny_model_dir, tmp_path, capsys):
    args = ["eval", "--model", str(tiny_model_dir), "--benchmarks", "addition", "--limit", "1", *QUICK]
    assert main([*args, "--backend", "vllm", "--output_dir", str(tmp_path)]) == 2
    assert "needs vllm installed" in capsys.readouterr().err


@pytest.mark.parametrize(
    "baseline",
    [
        {"benchmarks": {"addition": {"problems": 4, "samples": 16}}},  # no averaged numbers
        {"benchmarks": {"addition": {"pass@1": "40%", "mean_tokens": 100.0}}},
        {"benchmarks": {"addition": {"pass@1": 0.4, "mean_tokens": None}}},
        {"benchmarks": {"addition": {"pass@1": 40.0, "mean_tokens": 100.0}}},  # a percentage, not a fraction
        {"benchmarks": {"addition": [0.4, 100.0]}},
        {"benchmarks": ["addition"]},
        ["not", "results"],
    ],
)
def test_a_baseline_without_what_aes_needs_fails_before_sampling(
    tiny_model_dir, tmp_path, capsys, monkeypatch, baseline
):
    from sas_trl.evaluation import sampling

    def no_sampling(*args, **kwargs):
        raise AssertionError("the baseline must be checked before the model is loaded")

    monkeypatch.setattr(sampling, "make_backend", no_sampling)
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline))
    out = tmp_path / "o"
    args = ["eval", "--model", str(tiny_model_dir), "--benchmarks", "addition", "--output_dir", str(out), *QUICK]
    assert main([*args, "--baseline", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sas-trl eval: error: --baseline") and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_the_same_command_with_other_batch_sizes_draws_the_same_samples(tiny_model_dir, tmp_path, capsys):
    args = ["eval", "--model", str(tiny_model_dir), "--benchmarks", "addition", "--limit", "3", "--n", "3"]
    args += ["--max_tokens", "24", "--temperature", "1.0", "--no_progress"]
    drawn = {}
    for batch_size in (1, 3):
        out = tmp_path / f"b{batch_size}"
        assert main([*args, "--batch_size", str(batch_size), "--output_dir", str(out)]) == 0
        drawn[batch_size] = read_samples(out / "eval_samples.jsonl")
    assert drawn[1] == drawn[3] and len(drawn[1]) == 9
    assert len({s["text"] for s in drawn[1]}) > 1
    # A resume with another batch size continues the same draws: cut the file short, resume with batch size 2.
    samples = tmp_path / "b3" / "eval_samples.jsonl"
    samples.write_text("".join(samples.read_text().splitlines(keepends=True)[:5]))  # header + 4 samples
    assert main([*args, "--batch_size", "2", "--output_dir", str(tmp_path / "b3")]) == 0
    assert read_samples(samples) == drawn[1]


def test_eval_uses_one_cpu_thread_unless_told_otherwise(tiny_model_dir, tmp_path, monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = ["eval", "--model", str(tiny_model_dir), "--benchmarks", "addition", "--limit", "1", "--n", "1"]
    args += ["--max_tokens", "4", "--no_progress"]
    assert main([*args, "--output_dir", str(tmp_path / "a")]) == 0
    assert calls == [1]  # the default on a CPU
    calls.clear()
    assert main([*args, "--output_dir", str(tmp_path / "b"), "--num_threads", "3"]) == 0
    assert calls == [3]
    assert main([*args, "--output_dir", str(tmp_path / "c"), "--num_threads", "0"]) == 2


def test_a_samples_file_seeded_per_batch_is_not_resumed(tiny_model_dir, tmp_path):
    """Samples files written before per-sample seeding have no `seeding` entry: resuming one would mix draws."""
    answers = addition_answers(4)
    run_eval(config(tiny_model_dir, tmp_path), backend=ScriptedBackend(lambda k: (True, 5), answers))
    samples = tmp_path / "eval_samples.jsonl"
    lines = samples.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    assert header["header"]["seeding"] == "per-sample"
    del header["header"]["seeding"]
    samples.write_text(json.dumps(header) + "\n" + "".join(lines[1:3]))
    with pytest.raises(UserError, match=r"seeding: None -> 'per-sample'.*--overwrite"):
        run_eval(config(tiny_model_dir, tmp_path), backend=ScriptedBackend(lambda k: (True, 5), answers))


SAMPLING_COMMANDS = {
    "eval": ["--benchmarks", "addition"],
    "analyze-truncation": ["--benchmarks", "addition", "--long_tokens", "16", "--short_tokens", "8"],
    "inspect": ["--prompt", "Add 1, 2."],
}


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if a command gets as far as loading a tokenizer or a model."""
    import transformers

    def tripwire(*args, **kwargs):
        raise AssertionError("reached model work before the user error was reported")

    for cls in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM, transformers.AutoConfig):
        monkeypatch.setattr(cls, "from_pretrained", tripwire)


def one_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "Warning" not in line and "warnings.warn(" not in line]
    assert len(lines) == 1 and lines[0].startswith(f"sas-trl {command}: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("command", list(SAMPLING_COMMANDS))
@pytest.mark.parametrize("where", ["itself", "a parent"])
def test_an_output_folder_that_is_a_file_is_refused_before_any_model_work(
    tmp_path, capsys, no_model_load, command, where
):
    taken = tmp_path / "taken"
    taken.write_text("kept")
    out = taken if where == "itself" else taken / "sub"
    args = [command, "--model", str(tmp_path), *SAMPLING_COMMANDS[command], "--output_dir", str(out)]
    assert main(args) == 2
    assert f"--output_dir {str(out)!r}" in one_line(capsys, command)
    assert taken.read_text() == "kept"


@pytest.mark.parametrize("command", list(SAMPLING_COMMANDS))
@pytest.mark.parametrize("flag, value", [("--temperature", "nan"), ("--top_p", "nan"), ("--temperature", "inf")])
def test_non_finite_sampling_flags_are_refused_by_name(tmp_path, capsys, no_model_load, command, flag, value):
    args = [command, "--model", str(tmp_path), *SAMPLING_COMMANDS[command], "--output_dir", str(tmp_path / "o")]
    assert main([*args, flag, value]) == 2
    assert f"{flag} must be a finite number, got {float(value)!r}" in one_line(capsys, command)
    assert not (tmp_path / "o").exists()


def test_a_damaged_samples_file_is_one_error_naming_its_line(tiny_model_dir, tmp_path, capsys):
    args = ["eval", "--model", str(tiny_model_dir), "--benchmarks", "addition", "--limit", "2", *QUICK]
    args += ["--output_dir", str(tmp_path)]
    assert main(args) == 0
    samples = tmp_path / "eval_samples.jsonl"
    lines = samples.read_text().splitlines(keepends=True)
    lines[2] = lines[2][:20] + "\n"  # damaged in the middle, not a cut last line
    samples.write_text("".join(lines))
    capsys.readouterr()
    assert main(args) == 2
    assert f"{samples} line 3: not a JSON line" in one_line(capsys, "eval")
    assert samples.read_text() == "".join(lines)  # nothing repaired or dropped behind the user's back


def test_a_model_retrained_at_the_same_path_is_not_reported_from_old_samples(tiny_model_dir, tmp_path, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    args = ["eval", "--model", str(model), "--benchmarks", "addition", "--limit", "1", *QUICK]
    args += ["--output_dir", str(tmp_path / "out")]
    assert main(args) == 0
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100:] = bytes(100)  # other weights, same size and tensor table
    weights.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(args) == 2
    err = one_line(capsys, "eval")
    assert "weights: 'sha256:" in err and "the model's files changed" in err and "--overwrite" in err
    assert main([*args, "--overwrite"]) == 0
