"""`sas-trl train`: a recipe in, a trained (and optionally pushed) model out, in steps a reader can name.

The output folder's state lives in `output_dir`, the built-in model's warm-up cache in `warmup`, the training
data in `datasets`; this module orders the steps and builds the trainer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..constants import BUILTIN_DATASET
from ..errors import UserError, disk_full_error, is_disk_full
from . import hub
from .arguments import RunArguments
from .datasets import drop_long_prompts, load_eval_dataset, load_train_dataset
from .output_dir import keep_earlier_recipe, plan_output_dir, save_recipe, write_run_info
from .warmup import prepare_model


def run(run_args: RunArguments, args, model_args, recipe: dict[str, Any]) -> Path:
    """Train with `SASGRPOTrainer`; returns the output folder. `args` is the `SASConfig`.

    The steps, in order: the output folder's state (a finished run resumed is a no-op; a damaged checkpoint,
    changed settings on resume and a run in the folder trained over are refused), Hub access (seconds), the
    training data loaded and checked, the recipe saved, the model prepared (the built-in one is built and warmed
    up once per settings in the shared cache, verified before reuse), the rewards built, training, then the
    model, its card and (optionally) the upload. Every user error before
    training is raised before anything is written or any model work starts.
    """
    import torch
    from accelerate import PartialState

    from ..rewards import get_reward_funcs
    from ..transforms import apply_transforms
    from . import lapo

    state = PartialState()
    output_dir = Path(args.output_dir)
    token = hide_credentials(args)
    plan = plan_output_dir(run_args, args, model_args, recipe, main_process=state.is_main_process)
    if state.is_main_process:
        for note in plan.notes:  # a damaged checkpoint skipped, an optimizer restarted on request, changed settings
            print(f"sas-trl: {note}", flush=True)
    if plan.finished is not None:
        if state.is_main_process:
            print(f"sas-trl: {plan.finished}", flush=True)
        return output_dir
    repo_id = prepare_hub(args, state, token)
    if args.use_cpu or not torch.cuda.is_available():
        torch.set_num_threads(1)  # tiny models on shared CPU cores: one thread is fastest

    dataset = load_train_dataset(run_args, args)  # bad data fails here, before anything is written or loaded
    dataset = apply_transforms(dataset, run_args, args)  # the baselines' prompt changes (docs/baselines.md)
    eval_dataset = load_eval_dataset(run_args, args)  # TRL's dataset_test_split, when eval_strategy is set
    if eval_dataset is not None:
        eval_dataset = apply_transforms(eval_dataset, run_args, args)
    if state.is_main_process:
        keep_earlier_recipe(output_dir, plan)
    save_recipe(recipe, output_dir, state)
    model_id = prepare_model(run_args, model_args, args, state)
    if run_args.max_prompt_tokens is not None:
        dataset = drop_long_prompts(dataset, model_id, model_args, run_args.max_prompt_tokens)
        if eval_dataset is not None:
            eval_dataset = drop_long_prompts(eval_dataset, model_id, model_args, run_args.max_prompt_tokens)
    rewards = get_reward_funcs(run_args, args)
    step_labels = (run_args.dataset_name or "").startswith("builtin:")  # the label metrics (built-in tasks only)
    trainer = build_trainer(model_id, rewards, args, model_args, dataset, eval_dataset, step_labels=step_labels)
    hide_loading_credentials(trainer.args)  # the model is loaded: the checkpoints' training_args.bin need none
    lapo.save_targets_with_checkpoints(trainer, rewards)

    start = time.perf_counter()
    train(trainer, plan.resume, rewards, args)
    try:
        trainer.save_model(str(output_dir))
    except Exception as err:
        if not is_disk_full(err):
            raise
        raise disk_full_error(
            output_dir,
            saved=_saved_checkpoints(output_dir),
            not_saved=f"the final model (step {trainer.state.global_step}); run_info.json is not written, so the "
            "folder does not count as a finished run",
            needed=_model_bytes(trainer.model),
        ) from err
    if state.is_main_process:
        info = write_run_info(output_dir, trainer, state, model_id, seconds=time.perf_counter() - start)
        hub.write_card(
            output_dir, repo_id, args, model_args.model_name_or_path, recipe, trainer.state.log_history, _say
        )
        print(
            f"sas-trl: trained {info['global_step']} steps in {info['seconds']} s on {state.num_processes} "
            f"process(es); model saved to {output_dir}",
            flush=True,
        )
        names = getattr(trainer, "reward_func_names", None) or [None]
        print(finish_summary(trainer.state.log_history, names[0], output_dir, run_args, args, repo_id), flush=True)
        if repo_id is not None:
            push(output_dir, repo_id, args, token)
    return output_dir


def _say(message: str) -> None:
    print(f"sas-trl: {message}", flush=True)


def hide_credentials(args) -> str | None:
    """Take the Hub token out of the training arguments (transformers saves them, pickled, as
    `training_args.bin` in the model folder and every checkpoint; wandb logs them), redact credentials from the
    run's name (its card title, its wandb name) and from `sys.argv` (which wandb records); returns the token,
    which only the access check and the upload use."""
    import sys

    from ..redaction import redact_argv, redact_text, remember

    token = args.hub_token
    remember(token)
    args.hub_token = None
    if isinstance(args.run_name, str):
        args.run_name = redact_text(args.run_name)
    sys.argv[:] = redact_argv(sys.argv)
    return token


def hide_loading_credentials(args) -> None:
    """Once the model is loaded, the secret-named `model_init_kwargs` (a `token` for a gated model) are no longer
    needed: drop them before any checkpoint saves the arguments."""
    from ..redaction import is_secret_name

    if isinstance(args.model_init_kwargs, dict):
        args.model_init_kwargs = {k: v for k, v in args.model_init_kwargs.items() if not is_secret_name(k)}


def finish_summary(
    log_history: list[dict[str, Any]],
    correctness: str | None,
    output_dir: Path,
    run_args: RunArguments,
    args,
    repo_id: str | None,
) -> str:
    """The run's last logged training numbers (reward, the correctness reward's accuracy, length, truncation:
    TRL's log of that step's rollouts) and the commands to run next."""
    logged = [entry for entry in log_history if "reward" in entry]
    if logged:
        last = logged[-1]
        parts = [f"reward {last['reward']:.3f}"]
        accuracy = last.get(f"rewards/{correctness}/mean")
        if accuracy is not None:
            label = "accuracy" if correctness == "accuracy" else f"accuracy ({correctness})"
            parts.append(f"{label} {100 * accuracy:.1f}%")
        if "completions/mean_length" in last:
            parts.append(f"{last['completions/mean_length']:.1f} tokens")
        if "completions/clipped_ratio" in last:
            parts.append(f"{100 * last['completions/clipped_ratio']:.0f}% truncated")
        numbers = f"sas-trl: at step {last.get('step', '?')} (last logged, its training rollouts): {', '.join(parts)}"
    else:
        numbers = "sas-trl: no training step was logged (logging_steps beyond max_steps?)"
    evaluate = f"sas-trl eval --model {output_dir}"
    if run_args.dataset_name == BUILTIN_DATASET:  # the task it trained on, at its length budget
        evaluate += (
            f" --benchmarks addition --addition_terms {run_args.builtin_min_terms},{run_args.builtin_max_terms}"
            f" --max_tokens {args.max_completion_length}"
        )
    upload = f"; upload it: sas-trl push --output_dir {output_dir} --hub_model_id USER/NAME"
    upload = "" if repo_id is not None else upload  # pushed already
    return f"{numbers}\nsas-trl: next, evaluate it: {evaluate}{upload}"


def preflight(run_args: RunArguments, args, model_args, recipe: dict[str, Any]) -> str | None:
    """What `run` checks first, for the launching process before it starts others (their errors would be
    buried in the launcher's output): the output folder and the training data. Returns the "finished"
    message of a finished run resumed (nothing to launch), else None."""
    plan = plan_output_dir(run_args, args, model_args, recipe, main_process=True)
    if plan.finished is None:
        load_train_dataset(run_args, args)
        load_eval_dataset(run_args, args)
    return plan.finished


def prepare_hub(args, state, token: str | None = None) -> str | None:
    """The Hub repo to push to at the end (access checked now, in seconds), or None when not pushing.

    Trainer's own push-every-save is switched off: the upload happens once, after training, so a failed
    upload never interrupts training.
    """
    if not args.push_to_hub:
        return None
    repo_id = hub.hub_repo_id(args)
    if state.is_main_process:
        repo_id = hub.check_hub_access(repo_id, token, args.hub_private_repo)
    args.push_to_hub = False
    return repo_id


def model_init_kwargs(args, model_args) -> dict[str, Any]:
    """`args.model_init_kwargs` plus the recipe's `ModelConfig` loading fields (dtype, revision, attention)."""
    from_model_args = {
        "dtype": model_args.dtype,
        "revision": model_args.model_revision,
        "attn_implementation": model_args.attn_implementation,
    }
    return {**(args.model_init_kwargs or {}), **{k: v for k, v in from_model_args.items() if v is not None}}


def build_trainer(
    model_id: str, rewards: list, args, model_args, dataset, eval_dataset=None, step_labels: bool = False
):
    """`SASGRPOTrainer` with the project's console progress bar in place of transformers' printing; `step_labels`
    on the built-in tasks (ground truth per step for the label metrics)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import get_peft_config

    from ..trainer import SASGRPOTrainer
    from .progress import SASProgressCallback

    args.model_init_kwargs = model_init_kwargs(args, model_args)
    trainer = SASGRPOTrainer(
        model=model_id,
        reward_funcs=rewards,
        args=args,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        peft_config=get_peft_config(model_args),
        step_labels=step_labels,
    )
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(SASProgressCallback())
    return trainer


def train(trainer, resume: str | None, rewards: list, args) -> None:
    """Train (resuming from `resume` when set); the rewards' worker processes and the wandb run are closed also
    when training fails."""
    try:
        trainer.train(resume_from_checkpoint=resume)
    except Exception as err:
        if not is_disk_full(err):
            raise
        raise checkpoint_disk_full(Path(args.output_dir), trainer) from err
    finally:
        for reward in rewards:
            if hasattr(reward, "close"):
                reward.close()
        finish_wandb(args)


def checkpoint_disk_full(output_dir: Path, trainer) -> UserError:
    """The disk filled during training (a checkpoint save): the half-written checkpoint folders newer than the
    newest intact one are removed (a resume skips them anyway: they free space), and the error says what is
    saved, what is not and how much one checkpoint takes (the last intact one's size, else 3x the weights:
    weights and Adam's two moments)."""
    import shutil

    from .checkpoints import checkpoint_folders, checkpoint_problem

    folders = sorted(checkpoint_folders(output_dir), reverse=True)
    intact = next(((step, f) for step, f in folders if checkpoint_problem(f) is None), None)
    removed = []
    for step, folder in folders:
        if intact is not None and step <= intact[0]:
            break
        if not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    needed = (
        sum(p.stat().st_size for p in intact[1].rglob("*") if p.is_file())
        if intact is not None
        else 3 * _model_bytes(trainer.model)
    )
    partial = f"; the partial {', '.join(removed)} removed" if removed else ""
    return disk_full_error(
        output_dir,
        saved=_saved_checkpoints(output_dir),
        not_saved=f"the checkpoint of step {trainer.state.global_step}{partial}",
        needed=needed,
    )


def _saved_checkpoints(output_dir: Path) -> str:
    from .checkpoints import checkpoint_folders, checkpoint_problem

    intact = [f for _, f in sorted(checkpoint_folders(output_dir), reverse=True) if checkpoint_problem(f) is None]
    if not intact:
        return "no checkpoint"
    return f"{intact[0].name}, intact (--resume_from_checkpoint last continues from it)"


def _model_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def push(output_dir: Path, repo_id: str, args, token: str | None = None) -> None:
    """Upload the finished run (no file that holds a credential); a failure keeps everything local and says how
    to retry."""
    try:
        url = hub.upload(output_dir, repo_id, token, args.hub_private_repo, _say)
    except Exception as err:
        raise UserError(
            f"upload to {repo_id!r} failed ({type(err).__name__}: {err}). The trained model is safe in "
            f"{output_dir}; retry with: {hub.retry_command(output_dir, repo_id)}"
        ) from err
    print(f"sas-trl: pushed to {url}", flush=True)


def finish_wandb(args) -> None:
    """Flush and close the wandb run (summary and config files are written only then), also after a crash."""
    if "wandb" in (args.report_to or []):
        import sys

        wandb = sys.modules.get("wandb")
        if wandb is not None and wandb.run is not None:
            wandb.finish(exit_code=0 if sys.exc_info()[0] is None else 1)
