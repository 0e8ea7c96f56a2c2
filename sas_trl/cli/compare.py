"""`sas-trl compare --study FILE`: several conditions x several seeds, evaluated alike, reported with intervals."""

from __future__ import annotations

import argparse
import signal
import sys

from ..errors import UserError

HELP = "run a multi-seed study (conditions as recipe overrides) and report means, intervals and paired differences"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sas-trl compare", description=HELP, allow_abbrev=False)
    parser.add_argument("--study", required=True, help="the study file (YAML): base_recipe, conditions, seeds, ...")
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--print_commands",
        action="store_true",
        help="print one `sas-trl train ... && sas-trl eval ...` line per run (for a scheduler) instead of running",
    )
    what.add_argument("--report_only", action="store_true", help="aggregate whatever results exist; run nothing")
    what.add_argument(
        "--prepare_only", action="store_true", help="only build the shared starting model (the built-in one)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at once: each gets its own GPU(s) (CUDA_VISIBLE_DEVICES) or cores // N CPU threads (default 1)",
    )
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()

    def fail(message: str):
        raise UserError(message)

    parser.error = fail
    args = parser.parse_args(argv)

    from ..compare import load_study, trajectory
    from ..compare.children import Stopped
    from ..compare.runner import job_envs
    from ..compare.study import eval_flags
    from ..evaluation.config import check_output_folder
    from .eval import flag_names, parse_config

    study = load_study(args.study, eval_flags=flag_names())
    check_output_folder(study.output_dir, f"study {study.path}: output_dir")
    if study.results_dir is not None:  # read only with --report_only
        check_output_folder(study.results_dir, f"study {study.path}: results_dir", probe=not args.report_only)
    try:  # the eval options are `sas-trl eval` flags: check them as that command would
        parse_config(["--model", "starting-model", "--output_dir", str(study.output_dir), *study.eval_argv()])
    except UserError as err:
        raise UserError(f"study {study.path}: eval: {err}") from err
    if study.trajectory is not None:
        try:
            parse_config(
                [
                    "--model",
                    "starting-model",
                    "--output_dir",
                    str(study.output_dir),
                    *eval_flags(trajectory.eval_options(study)),
                ]
            )
        except UserError as err:
            raise UserError(f"study {study.path}: trajectory.eval: {err}") from err
    if args.jobs != 1 and (args.print_commands or args.prepare_only or args.report_only):
        raise UserError(
            "--jobs runs the study; it has no effect with --print_commands, --prepare_only or --report_only"
        )
    if args.jobs != 1:
        job_envs(study, args.jobs)  # fewer than 1 job, or more jobs than GPUs, fails here before any work

    try:
        return _run(args, study)
    except Stopped as stop:
        print(
            f"sas-trl compare: stopped by {signal.Signals(stop.signum).name}, and its training and evaluation "
            "processes with it; checkpoints and samples saved so far are kept: run the same command to resume",
            file=sys.stderr,
        )
        return 128 + stop.signum


def _run(args: argparse.Namespace, study) -> int:
    from ..compare import build_report, run_study
    from ..compare.children import stopped_on_signals
    from ..compare.power import planned_power
    from ..compare.runner import prepare_starting_model, print_commands, study_lock

    # One process at a time writes into a study folder, and its runs' processes stop with it.
    with study_lock(study), stopped_on_signals():
        if args.print_commands:
            print("\n".join(print_commands(study)))
            if study.power is not None:  # on stderr: stdout stays one command per line for a scheduler
                print("\n".join(f"# {line}" for line in planned_power(study)), file=sys.stderr)
            return 0
        if args.prepare_only:
            print(f"sas-trl compare: starting model ready: {prepare_starting_model(study)}")
            return 0
        if not args.report_only:
            run_study(study, jobs=args.jobs)
        build_report(study)
    out = study.output_dir
    print((out / "report.md").read_text())
    print(f"sas-trl compare: wrote {out / 'report.md'}, {out / 'results.json'} and the plots in {out}")
    return 0
