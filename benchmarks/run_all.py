"""Run every benchmark and print one table: mask computation, training step, reward grading.

Each benchmark runs in its own process (clean memory, one torch thread) and writes its JSON under
`benchmarks/results/`; this runner reads them back, prints the combined table with the targets of the
benchmark issue, and writes `benchmarks/results/summary.json`. `benchmarks/reward_throughput.py` is run when it
exists; without it (or if it fails) its rows say so and the rest still runs.

    .venv/bin/python benchmarks/run_all.py [--quick] [--skip masks train_step reward_throughput]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# name -> (script, full arguments, --quick arguments)
BENCHMARKS = {
    "masks": ("masks.py", [], ["--rollouts", "256", "--length", "2048", "--repeats", "5"]),
    "train_step": ("train_step.py", [], ["--runs", "2", "--steps", "6"]),
    "reward_throughput": ("reward_throughput.py", [], ["--rollouts", "128", "--workers", "0", "1"]),
}


def run_benchmark(name: str, quick: bool) -> dict:
    """Run one benchmark script; its parsed JSON, or {"error": why} if it is missing or fails."""
    script, full, quick_args = BENCHMARKS[name]
    path = HERE / script
    if not path.exists():
        return {"error": f"{script} not found: nothing measured"}
    out = RESULTS / f"{name}.json"
    command = [sys.executable, str(path), *(quick_args if quick else full), "--out", str(out)]
    print(f"$ {' '.join(command)}", flush=True)
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=HERE.parent, capture_output=True, text=True)
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-5:]
        return {"error": f"{script} exited with {completed.returncode}: " + " | ".join(tail)}
    print("\n".join(line for line in completed.stdout.splitlines() if not line.startswith("saved")), flush=True)
    try:
        result = json.loads(out.read_text())
    except (OSError, json.JSONDecodeError) as err:
        return {"error": f"{script} wrote no readable {out.name}: {err}"}
    result["wall_s"] = time.perf_counter() - start
    return result


def table_rows(results: dict) -> list[tuple[str, str, str, str]]:
    """(measurement, value, target, met?) rows of the combined table."""
    rows = []
    masks = results.get("masks", {})
    if "error" in masks:
        rows.append(("mask computation", masks["error"], "", ""))
    elif masks:
        res, cfg = masks["results"], masks["config"]
        loop = res["loop_reference"]
        extrapolated = f" (measured on {loop['measured_rollouts']}, extrapolated)" if loop["extrapolated"] else ""
        size = f"{cfg['rollouts']}x{cfg['length']}"
        rows += [
            (f"masks {size}: floor (masked sum)", f"{1e3 * res['floor']['min_s']:.2f} ms", "", ""),
            (f"masks {size}: SAS vectorized", f"{1e3 * res['vectorized']['min_s']:.2f} ms", "", ""),
            (
                f"masks {size}: SAS, static S = T (the accelerator call)",
                f"{1e3 * res['vectorized_static_slots']['min_s']:.2f} ms"
                + ("" if masks.get("static_slots_identical", True) else " (MASKS DIFFER)"),
                "",
                "",
            ),
            (f"masks {size}: loop reference", f"{loop['min_s']:.2f} s{extrapolated}", "", ""),
            (
                "  loop / vectorized",
                f"{masks['speedup_vs_loop']:.0f}x",
                ">= 100x",
                _met(masks["speedup_vs_loop"] >= 100),
            ),
            (
                "  vectorized / floor",
                f"{res['vectorized']['x_floor']:.1f}x",
                "<= 10x",
                _met(res["vectorized"]["x_floor"] <= 10),
            ),
            (
                "  peak extra memory",
                f"{masks['peak_extra_in_BT_tensors']['int64']:.2f} (B,T) int64 = "
                f"{masks['peak_extra_in_BT_tensors']['float32']:.2f} float32",
                "<= 3 (B,T)",
                _met(masks["peak_extra_in_BT_tensors"]["float32"] <= 3),
            ),
            (
                "  masks agree (loop vs vectorized)",
                f"{masks['agreement']['rollouts_checked'] - masks['agreement']['rollouts_mismatched']}"
                f"/{masks['agreement']['rollouts_checked']} rollouts",
                "all",
                _met(masks["agreement"]["rollouts_mismatched"] == 0),
            ),
        ]
    train = results.get("train_step", {})
    if "error" in train:
        rows.append(("training step", train["error"], "", ""))
    elif train:
        res = train["results"]
        rows += [
            (
                "train step: trl.GRPOTrainer",
                f"{1e3 * res['grpo']['min_s']:.0f} ms min, {1e3 * res['grpo']['median_s']:.0f} median",
                "",
                "",
            ),
            (
                "train step: SASGRPOTrainer",
                f"{1e3 * res['sas']['min_s']:.0f} ms min, {1e3 * res['sas']['median_s']:.0f} median",
                "",
                "",
            ),
            ("  SAS / GRPO (min)", f"{train['ratio_min']:.3f}", "<= 1.03", _met(train["ratio_min"] <= 1.03)),
            ("  SAS / GRPO (median)", f"{train['ratio_median']:.3f}", "<= 1.03", _met(train["ratio_median"] <= 1.03)),
            (
                "  SAS / GRPO (per-step minima)",
                f"{train['ratio_per_step_min']:.3f}",
                "<= 1.03",
                _met(train["ratio_per_step_min"] <= 1.03),
            ),
            ("  SAS's own code per step", f"{1e3 * train['sas_own_seconds_per_step']:.2f} ms", "", ""),
        ]
    reward = results.get("reward_throughput", {})
    if "error" in reward:
        rows.append(("reward grading", reward["error"], "", ""))
    elif reward:
        for row in reward.get("results", []):
            if not isinstance(row, dict):
                continue
            label = f"reward grading, {row.get('workers', '?')} worker(s)"
            value = ", ".join(f"{k}={v}" for k, v in row.items() if k in ("rollouts", "seconds", "rollouts_per_s"))
            rows.append((label, value or json.dumps(row), "", ""))
    return rows


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, about a minute")
    parser.add_argument("--skip", nargs="*", default=[], choices=list(BENCHMARKS))
    args = parser.parse_args()

    RESULTS.mkdir(parents=True, exist_ok=True)
    results = {name: run_benchmark(name, args.quick) for name in BENCHMARKS if name not in args.skip}
    rows = table_rows(results)
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print()
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    (RESULTS / "summary.json").write_text(
        json.dumps({"quick": args.quick, "rows": rows, "results": results}, indent=2) + "\n"
    )
    print(f"\nsaved {RESULTS / 'summary.json'}")


if __name__ == "__main__":
    main()
