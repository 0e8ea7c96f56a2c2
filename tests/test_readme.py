"""The README's and its docs pages' Python examples run as written, and their commands are the ones CI and users run.

The README keeps two commands (set up + the main job, set up + the tests); docs/install.md has the other test
environments and the install notes, docs/design.md the pure-function example. Both are read here as the README is."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
INSTALL = (ROOT / "docs" / "install.md").read_text()  # the other test environments and the install notes
DESIGN = (ROOT / "docs" / "design.md").read_text()  # the pure tensor functions' example
# The README, then the pages it moved commands and examples to: README first, so its commands come first.
PAGES = {"README.md": README, "docs/install.md": INSTALL, "docs/design.md": DESIGN}
PYTHON_BLOCKS = [
    (name, index, block)
    for name, text in PAGES.items()
    for index, block in enumerate(re.findall(r"```python\n(.*?)```", text, flags=re.S))
]


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def _section(text: str, heading: str) -> str:
    return text[text.index(heading + "\n") :].split("\n## ")[0]


def test_readme_and_docs_have_python_examples():
    assert sum(name == "README.md" for name, _, _ in PYTHON_BLOCKS) >= 1  # the trainer
    assert sum(name == "docs/design.md" for name, _, _ in PYTHON_BLOCKS) >= 1  # the pure functions
    assert len(PYTHON_BLOCKS) >= 2


@pytest.mark.parametrize(("name", "index", "block"), PYTHON_BLOCKS, ids=[f"{n}[{i}]" for n, i, _ in PYTHON_BLOCKS])
def test_readme_and_docs_python_block_runs(name, index, block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(block, f"{name}[python block {index}]", "exec"), {"__name__": "__readme__"})


def test_the_two_commands_section_shows_two_commands():
    """Set up + the main job, set up + the tests; the other environments' commands live in docs/install.md."""
    two_commands = _section(README, "## Two commands")
    commands = [c for block in _bash_blocks(two_commands) for c in block.splitlines() if c and not c.startswith("#")]
    assert len(commands) == 2, commands
    assert commands[0].endswith("sas-trl train --recipe recipes/tiny_cpu.yaml")
    assert commands[1].endswith(".venv/bin/python -m pytest -q")
    assert commands[0].split(" && ")[:2] == commands[1].split(" && ")[:2]  # the same setup
    assert "docs/install.md" in two_commands


def test_ci_runs_the_readme_test_command():
    def commands(text):
        return [c for block in _bash_blocks(text) for c in block.splitlines() if c and not c.startswith("#")]

    test_command = next(c for c in commands(README) if "pytest" in c)
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines
    # Every test command the README and docs/install.md give (the README's main suite, then the verl plug-in's and
    # the GPU pins' on the install page) is one CI runs, in CI's order, and back.
    readme_tests = [c for c in commands(README) + commands(INSTALL) if "pytest" in c]
    assert readme_tests == [line for line in ci_lines if "pytest" in line and not line.startswith("#")]
    assert readme_tests[0] == test_command
    assert any(c.endswith("-m pytest -q tests/verl") for c in readme_tests)


def _bash_lines() -> list[tuple[str | None, str]]:
    """(the comment line right above or None, the command) for every command line of the bash blocks of the README
    and of every page in docs/ (README first)."""
    pages = [README] + [page.read_text() for page in sorted((ROOT / "docs").rglob("*.md"))]
    pairs = []
    for block in [block for text in pages for block in _bash_blocks(text)]:
        above = None
        for line in block.splitlines():
            if line.startswith("#"):
                above = line
            elif line.strip():
                pairs.append((above, line))
                above = None
    return pairs


def test_every_readme_install_line_is_run_by_ci_or_says_why_not():
    """An install line (README or docs/) CI runs is in .ci/run with the same `&&`-separated steps (the train
    command after the first one runs in tests/test_cli.py); any other says on the line above why CI does not run it
    (a GPU machine, a host CI cannot reach)."""
    ci_steps = {step for line in (ROOT / ".ci" / "run").read_text().splitlines() for step in line.split(" && ")}
    installs = [(above, line) for above, line in _bash_lines() if "pip install" in line]
    assert len(installs) >= 4
    for above, line in installs:
        install_steps = [step for step in line.split(" && ") if "pip install" in step or "-m venv" in step]
        if all(step in ci_steps for step in install_steps):
            continue
        assert above and above.startswith("# Not run by CI ("), f"install line neither in .ci/run nor marked: {line}"
        assert "GPU" in above or "download.pytorch.org" in above, above
    assert any(".venv-verl/bin/pip install" in line for _, line in installs)  # docs/verl.md's, CI's own steps
    marked = [line for above, line in installs if above and above.startswith("# Not run by CI (")]
    assert any("[vllm,deepspeed]" in line for line in marked)  # the GPU install, marked with its reason
    assert any("--index-url https://download.pytorch.org/whl/cpu" in line for line in marked)
    for text in (README, INSTALL):
        assert not re.search(r"pip install[^\n`]*\"sas-trl\[", text)  # not on the package index: no such line


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
    main_command = _bash_blocks(_section(README, "## Two commands"))[0].strip().splitlines()[-1]
    assert main_command.endswith("sas-trl train --recipe recipes/tiny_cpu.yaml")
    assert (ROOT / "recipes" / "tiny_cpu.yaml").is_file()  # run end to end in tests/test_cli.py


def test_commands_on_the_tiny_model_sample_only_problems_it_trained_on():
    # The built-in addition task defaults to 8 addends; tiny_cpu.yaml trains on at most `builtin_max_terms`.
    import yaml

    trained = yaml.safe_load((ROOT / "recipes" / "tiny_cpu.yaml").read_text())["builtin_max_terms"]
    texts = [README] + [(ROOT / "docs" / name).read_text() for name in ("inspect.md", "eval.md", "truncation.md")]
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
    for text in (README, (ROOT / "docs" / "notebooks.md").read_text()):
        notebooks = text[text.index("# Notebooks") :]
        assert ".venv/bin/jupyter lab notebooks/" in notebooks


def test_the_first_command_says_why_it_is_silent_at_first():
    two_commands = _section(README, "## Two commands")
    assert "pip install -q" in two_commands and "prints nothing for its first minutes" in two_commands


def test_the_readme_links_resolve():
    """Every relative link of the README and of the docs pages resolves from where the page is."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+://", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{page.relative_to(ROOT)} links {target}, which does not exist"


def test_the_study_result_comes_first():
    """The project's own finding, with its intervals, is the README's first section: the testbed study's tables
    (tests/test_studies_committed.py holds them to its committed results), what it does and does not say about the
    paper's setting, and the earlier task's result in short."""
    first = README.split("\n## ")[1]
    assert first.startswith("What the project found")
    assert "### The testbed study at a glance" in first
    for row in (
        "| oracle_rollout |",
        "| oracle_step |",
        "| `sas` vs `grpo_short` |",
        "| `sas` vs `grpo_overlong_filter` |",
    ):
        assert row in first, row
    assert "**What this does and does not say about DeepScaleR at 4K.**" in first
    assert "-2.09 [-4.34, +0.17]" in first  # the earlier task: SAS vs GRPO-short in its regime B
