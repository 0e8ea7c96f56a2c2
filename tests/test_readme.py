"""The README's Python examples run as written, and its commands are the ones CI and users run."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_python_examples():
    assert len(PYTHON_BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(PYTHON_BLOCKS[index], f"README.md[python block {index}]", "exec"), {"__name__": "__readme__"})


def test_ci_runs_the_readme_test_command():
    bash_blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    commands = [line for block in bash_blocks for line in block.splitlines() if line and not line.startswith("#")]
    test_command = next(c for c in commands if "pytest" in c)
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines
    # Every test command the README gives (the main suite, then the verl plug-in's) is one CI runs, and back.
    readme_tests = [c for c in commands if "pytest" in c]
    assert readme_tests == [line for line in ci_lines if "pytest" in line and not line.startswith("#")]
    assert any(c.endswith("-m pytest -q tests/verl") for c in readme_tests)


def _bash_lines() -> list[tuple[str | None, str]]:
    """(the comment line right above or None, the command) for every command line of the README's bash blocks."""
    pairs = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        above = None
        for line in block.splitlines():
            if line.startswith("#"):
                above = line
            elif line.strip():
                pairs.append((above, line))
                above = None
    return pairs


def test_every_readme_install_line_is_run_by_ci_or_says_why_not():
    """An install line CI runs is in .ci/run with the same `&&`-separated steps (the train command after the first
    one runs in tests/test_cli.py); any other says on the line above why CI does not run it (a GPU machine, a host
    CI cannot reach)."""
    ci_steps = {step for line in (ROOT / ".ci" / "run").read_text().splitlines() for step in line.split(" && ")}
    installs = [(above, line) for above, line in _bash_lines() if "pip install" in line]
    assert len(installs) >= 4
    for above, line in installs:
        install_steps = [step for step in line.split(" && ") if "pip install" in step or "-m venv" in step]
        if all(step in ci_steps for step in install_steps):
            continue
        assert above and above.startswith("# Not run by CI ("), (
            f"README install line neither in .ci/run nor marked: {line}"
        )
        assert "GPU" in above or "download.pytorch.org" in above, above
    marked = [line for above, line in installs if above and above.startswith("# Not run by CI (")]
    assert any("[vllm,deepspeed]" in line for line in marked)  # the GPU install, marked with its reason
    assert any("--index-url https://download.pytorch.org/whl/cpu" in line for line in marked)
    assert not re.search(r"pip install[^\n`]*\"sas-trl\[", README)  # not on the package index: no such line


def test_the_gpu_pins_environment_takes_the_vllm_extras_transformers_cap():
    """CI's third environment runs the suite under the transformers the `vllm` extra allows (its cap, as vLLM's)."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    (extra,) = re.findall(r"^vllm = \[(.*)\]$", pyproject, flags=re.M)
    (cap,) = re.findall(r'"(transformers<[0-9.]+)"', extra)
    (line,) = [c for c in (ROOT / ".ci" / "run").read_text().splitlines() if ".venv-gpu-pins/bin/pip" in c]
    assert f'"{cap}"' in line and line.endswith(".venv-gpu-pins/bin/python -m pytest -q")
    assert ".venv-gpu-pins/" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_main_suite_does_not_collect_the_verl_tests():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'testpaths = ["tests"]' in pyproject
    assert re.search(r'^norecursedirs = \[.*"verl".*\]$', pyproject, flags=re.M)
    assert (ROOT / "tests" / "verl").is_dir()


def test_readme_main_command_is_the_built_in_default():
    bash_blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    main_command = bash_blocks[0].strip().splitlines()[-1]
    assert main_command.endswith("sas-trl train --recipe recipes/tiny_cpu.yaml")
    assert (ROOT / "recipes" / "tiny_cpu.yaml").is_file()  # run end to end in tests/test_cli.py


def test_commands_on_the_tiny_model_sample_only_problems_it_trained_on():
    # The built-in addition task defaults to 8 addends; tiny_cpu.yaml trains on at most `builtin_max_terms`.
    import yaml

    trained = yaml.safe_load((ROOT / "recipes" / "tiny_cpu.yaml").read_text())["builtin_max_terms"]
    texts = [README, (ROOT / "docs" / "inspect.md").read_text()]
    commands = [
        line
        for text in texts
        for line in text.splitlines()
        if re.match(r"sas-trl (eval|inspect|analyze-truncation) .*--model outputs/tiny_cpu", line)
        and "--benchmarks addition" in line
    ]
    assert any(c.startswith("sas-trl inspect") for c in commands)
    for command in commands:
        terms = re.search(r"--addition_terms (\d+),(\d+)", command)
        assert terms and int(terms.group(2)) <= trained, command


def test_the_readme_says_how_to_open_the_notebooks_with_the_dev_extras_jupyter():
    dev = re.search(r"^dev = \[(.*?)^\]", (ROOT / "pyproject.toml").read_text(), flags=re.S | re.M).group(1)
    assert re.search(r'^\s*"(jupyterlab|notebook)\b', dev, flags=re.M)  # a front-end, not only a kernel
    notebooks = README[README.index("## Notebooks") :]
    assert ".venv/bin/jupyter lab notebooks/" in notebooks


def test_the_first_command_says_why_it_is_silent_at_first():
    two_commands = README[README.index("## Two commands") :].split("\n## ")[0]
    assert "pip install -q" in two_commands and "prints nothing for its first minutes" in two_commands
