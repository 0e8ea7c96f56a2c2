"""sas_trl.compare.glance: the report's "At a glance" tables, read from a study's results."""

from __future__ import annotations

import copy
import json

from cli_helpers import ROOT

from sas_trl.compare.glance import markdown

PILOT = json.loads((ROOT / "docs" / "studies" / "testbed_pilot" / "results.json").read_text())


def _row(lines: list[str], name: str, header: str) -> list[str]:
    """The cells of `name`'s row in the table whose header line starts with `header`."""
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    table = []
    for line in lines[start:]:
        if not line:
            break
        table.append(line)
    (row,) = [line for line in table if line.startswith(f"| {name} |")]
    return [cell.strip() for cell in row.strip("|").split("|")][1:]


def test_each_condition_gets_its_outcome_with_intervals_and_paired_differences():
    lines = markdown(PILOT)
    assert lines[0] == "## At a glance"
    sas = PILOT["conditions"]["sas"]
    p, d = sas["summary"]["pass@1"], sas["vs_reference"]["pass@1"]
    seeds, pass1, vs_ref, tokens, vs_tokens, stability = _row(lines, "sas", "| condition | seeds |")
    assert seeds == "2"
    assert pass1 == f"{100 * p['mean']:.2f} [{100 * p['ci_low']:.2f}, {100 * p['ci_high']:.2f}]"
    assert vs_ref == f"{100 * d['mean']:+.2f} [{100 * d['ci_low']:+.2f}, {100 * d['ci_high']:+.2f}] p={d['p']:.3f}"
    assert tokens.startswith(f"{sas['summary']['mean_tokens']['mean']:.1f} [")
    assert vs_tokens.endswith(f"p={sas['vs_reference']['mean_tokens']['p']:.3f}")
    assert stability.endswith("+0.00†]")  # final minus peak cannot exceed 0: the t-interval clipped, marked
    # the reference has no difference from itself; the starting model no interval (one model, one evaluation)
    assert _row(lines, "grpo_short", "| condition | seeds |")[2] == ""
    start = PILOT["starting_model"]
    assert _row(lines, "starting model", "| condition | seeds |")[:2] == ["", f"{100 * start['pass@1']:.2f}"]


def test_the_mechanism_table_reads_the_step_labels_and_entropy():
    lines = markdown(PILOT)
    header = "| condition | steps per rollout |"
    sas = PILOT["conditions"]["sas"]["step_labels"]
    steps, mislabelled, punished, shielded, zeroed, entropy = _row(lines, "sas", header)
    n = sas["sas/steps_per_rollout"]["mean"]
    assert steps == f"{n['mean']:.1f} [{n['ci_low']:.1f}, {n['ci_high']:.1f}]"  # what the selection chose from
    s = sas["sas/shielded_steps_correct_frac"]["mean"]
    assert shielded == f"{100 * s['mean']:.1f} [{100 * s['ci_low']:.1f}, {100 * s['ci_high']:.1f}]"
    assert mislabelled.startswith(f"{100 * sas['sas/mislabelled_frac']['mean']['mean']:.1f} [")
    assert punished.endswith("100.0†]")  # a share's interval clipped at 100%
    assert entropy.startswith(f"{sas['entropy']['change']['mean']:+.3f} [")
    assert _row(lines, "grpo_short", header)[3:5] == ["n/a", "n/a"]  # GRPO shields and zeroes no step


def test_the_primary_comparisons_carry_their_minimum_detectable_effect_and_the_planned_effect():
    lines = markdown(PILOT)
    (row,) = [r for r in PILOT["power"]["comparisons"] if r["condition"] == "sas"]
    pairs, difference, mde, needed = _row(lines, "`sas` vs `grpo_short`", "| comparison |")
    assert (pairs, mde, needed) == ("2", f"{100 * row['mde']:.2f}", str(row["needed"]["0.02"]))
    assert difference.startswith(f"{100 * row['difference']['mean']:+.2f} [")
    assert "| seeds a 2-point difference needs |" in "\n".join(lines)  # the pilot planned no effect: 2 points
    planned = copy.deepcopy(PILOT)
    planned["power"]["effect"] = 0.03
    for r in planned["power"]["comparisons"]:
        r["needed"]["0.03"] = None
    text = "\n".join(markdown(planned))
    assert "| seeds a 3-point difference needs |" in text and "| > 10000 |" in text  # None: beyond the search


def test_a_study_without_results_or_labels_shows_what_it_has():
    empty = copy.deepcopy(PILOT)
    for c in empty["conditions"].values():
        c["summary"]["pass@1"]["n"] = 0
    assert markdown(empty) == []
    for c in empty["conditions"].values():  # no run evaluated: the summary has no metric at all
        c["summary"] = {}
    assert markdown(empty) == []
    unlabelled = copy.deepcopy(PILOT)
    for c in unlabelled["conditions"].values():
        del c["step_labels"]
    unlabelled["power"]["comparisons"] = []
    text = "\n".join(markdown(unlabelled))
    assert "| condition | seeds |" in text and "mislabelled" not in text and "| comparison |" not in text
