"""The notebooks run top to bottom (shortened by SAS_NOTEBOOK_QUICK=1)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
# What each notebook must print; a notebook that runs in seconds runs in every test session, not only with `slow`.
EXPECTED = {
    "sas_vs_grpo_tiny.ipynb": ["accuracy", "step 0: mean log-prob"],
    "what_sas_does.ipynb": ["[x]", "only correct", "failed   zeroed steps [0]", "release counting"],
    "short_context_study.ipynb": [
        "mislabel rate",
        "regime B:",
        "sas                    Pass@1",
        "final-peak",
        "primary: sas vs grpo_short",
        "final_minus_peak vs grpo_short",
    ],
    "testbed_study.ipynb": ["runs with results per condition", "mislabelled (% of training rollouts)", "grpo_short"],
}
QUICK = {"what_sas_does.ipynb", "testbed_study.ipynb"}  # the testbed notebook reads kept results: seconds


def test_there_are_notebooks():
    assert NOTEBOOKS and {p.name for p in NOTEBOOKS} == set(EXPECTED)


@pytest.mark.parametrize(
    "path",
    [p if p.name in QUICK else pytest.param(p, marks=pytest.mark.slow) for p in NOTEBOOKS],
    ids=lambda p: p.name,
)
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("SAS_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(o.get("text", "") for cell in notebook.cells for o in cell.get("outputs", []))
    for text in EXPECTED[path.name]:
        assert text in outputs, text
    assert not any(o.get("output_type") == "error" for cell in notebook.cells for o in cell.get("outputs", []))


def test_the_study_notebook_finds_its_studies_in_the_installed_package(tmp_path, monkeypatch, capsys):
    # As installed: sas_trl outside any clone, the notebook started in an empty folder. Its setup cell finds the
    # packaged studies by their `recipes/...` paths and puts every output in that folder.
    import json

    import sas_trl
    from sas_trl.training.packaged import PACKAGED

    path = next(p for p in NOTEBOOKS if p.name == "short_context_study.ipynb")
    setup = "".join(json.loads(path.read_text())["cells"][1]["source"])
    monkeypatch.delenv("SAS_NOTEBOOK_QUICK", raising=False)
    monkeypatch.setattr(sas_trl, "__file__", str(tmp_path / "site-packages" / "sas_trl" / "__init__.py"))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(setup, f"{path.name}[setup cell]", "exec"), namespace)
    studies = namespace["studies"]
    assert studies["B"] == (PACKAGED / "studies" / "decisive_B.yaml").resolve()
    assert namespace["output_dir"](studies["B"]).is_relative_to(tmp_path)
    assert "regime B: " in capsys.readouterr().out
