"""`sas-trl push --output_dir DIR --hub_model_id NAME`: upload a finished run to the Hugging Face Hub."""

from __future__ import annotations

import argparse
import os

from ..errors import UserError

HELP = "upload a finished run's output folder (model, tokenizer, model card) to the Hugging Face Hub"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sas-trl push", description=HELP, allow_abbrev=False)
    parser.add_argument("--output_dir", required=True, help="the finished run's output folder")
    parser.add_argument("--hub_model_id", required=True, help="repo id, e.g. user/model")
    parser.add_argument("--hub_private_repo", action="store_true", help="create the repo as private")
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.output_dir, "config.json")):
        raise UserError(f"--output_dir {args.output_dir!r} holds no saved model (no config.json)")

    from ..training.hub import add_eval_table, check_hub_access, upload

    def say(message: str) -> None:
        print(f"sas-trl: {message}", flush=True)

    repo_id = check_hub_access(args.hub_model_id, private=args.hub_private_repo or None)
    if add_eval_table(args.output_dir, say):
        print(f"sas-trl: added {args.output_dir}/eval_results.md to the model card")
    print(f"sas-trl: pushed to {upload(args.output_dir, repo_id, private=args.hub_private_repo or None, echo=say)}")
    return 0
