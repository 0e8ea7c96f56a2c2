"""The studies whose results the repository keeps (docs/studies/): each one's report rebuilds from its kept runs
alone, as on a fresh clone (`sas-trl compare --report_only`), into the numbers committed next to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cli_helpers import ROOT

from sas_trl.compare import load_study
from sas_trl.compare.report import collect

STUDIES = ROOT / "recipes" / "studies"
KEPT = sorted(
    path.name
    for path in STUDIES.glob("*.yaml")
    if "results_dir" in (spec := yaml.safe_load(path.read_text())) and (ROOT / spec["results_dir"]).is_dir()
)


def test_the_testbed_study_and_its_pilots_keep_their_results():
    assert {"testbed.yaml", "testbed_pilot.yaml", "testbed_pilot_lr5e-5.yaml"} <= set(KEPT)


@pytest.mark.parametrize("name", KEPT)
def test_a_kept_study_rebuilds_its_committed_results_from_its_kept_runs(name, tmp_path):
    spec = yaml.safe_load((STUDIES / name).read_text())
    docs = ROOT / spec["results_dir"]
    committed = json.loads((docs.parent / "results.json").read_text())
    # a fresh clone: no study folder, so every run is read from results_dir
    spec.update(output_dir=str(tmp_path / "out"), results_dir=str(docs), base_recipe=str(ROOT / spec["base_recipe"]))
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    rebuilt = collect(load_study(path))
    for key in ("conditions", "power", "starting_model", "missing", "seeds"):
        assert rebuilt[key] == committed[key], f"{name}: {key} differs from {docs.parent / 'results.json'}"
    assert Path(rebuilt["study"]).name == name


def test_the_readme_quotes_the_testbed_studys_tables_as_its_committed_results_give_them():
    from sas_trl.compare.glance import markdown

    results = json.loads((ROOT / "docs" / "studies" / "testbed" / "results.json").read_text())
    lines = markdown(results)
    assert lines[0] == "## At a glance"
    tables = "\n".join(lines[2:])  # the README gives the section its own heading
    assert tables in (ROOT / "README.md").read_text()
    assert tables in (ROOT / "docs" / "studies" / "testbed" / "report.md").read_text()
