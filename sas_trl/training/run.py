"""`sas-trl train`: a recipe in, a trained (and optionally pushed) model out, in steps a reader can name."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..constants import BUILTIN_DATASET, BUILTIN_MODEL
from ..errors import RecipeError, UserError
from . import hub
from .recipes import RunArguments, dump_recipe


def run(run_args: RunArguments, args, model_args, recipe: dict[str, Any]) -> Path:
    """Train with `SASGRPOTrainer`; returns the output folder. `args` is the `SASConfig`.

    The steps, in order: the output folder's state (a finished run resumed is a no-op; a finished run of another
    recipe is refused), Hub access (seconds), the training data loaded and checked, the recipe saved, the model
    prepared (the built-in one is built and warmed up, or its cached warm-up reused when its settings match), the
    rewards built, training, then the model, its card and (optionally) the upload. Every user error before
    training is raised before anything is written or any model work starts.
    """
    import torch
    from accelerate import PartialState

    from ..rewards import get_reward_funcs
    from ..transforms import apply_transforms
    from . import lapo

    state = PartialState()
    output_dir = Path(args.output_dir)
    plan = plan_output_dir(run_args, args, model_args, recipe, main_process=state.is_main_process)
    if plan.finished is not None:
        if state.is_main_process:
            print(f"sas-trl: {plan.finished}", flush=True)
        return output_dir
    repo_id = prepare_hub(args, state)
    if args.use_cpu or not torch.cuda.is_available():
        torch.set_num_threads(1)  # tiny models on shared CPU cores: one thread is fastest

    dataset = load_train_dataset(run_args, args)  # bad data fails here, before anything is written or loaded
    dataset = apply_transforms(dataset, run_args, args)  # the baselines' prompt changes (docs/baselines.md)
    save_recipe(recipe, output_dir, state)
    model_id = prepare_model(run_args, model_args, args, state)
    if run_args.max_prompt_tokens is not None:
        dataset = drop_long_prompts(dataset, model_id, model_args, run_args.max_prompt_tokens)
    rewards = get_reward_funcs(run_args, args)
    trainer = build_trainer(model_id, rewards, args, model_args, dataset)
    lapo.save_targets_with_checkpoints(trainer, rewards)

    start = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=plan.resume)
    finally:
        for reward in rewards:
            if hasattr(reward, "close"):
                reward.close()
        finish_wandb(args)
    trainer.save_model(str(output_dir))
    if state.is_main_process:
        info = write_run_info(output_dir, trainer, state, model_id, seconds=time.perf_counter() - start)
        hub.write_card(output_dir, repo_id, args, model_args.model_name_or_path, recipe, trainer.state.log_history)
        print(
            f"sas-trl: trained {info['global_step']} steps in {info['seconds']} s on {state.num_processes} "
            f"process(es); model saved to {output_dir}",
            flush=True,
        )
        if repo_id is not None:
            push(output_dir, repo_id, args)
    return output_dir


def preflight(run_args: RunArguments, args, model_args, recipe: dict[str, Any]) -> str | None:
    """What `run` checks first, for the launching process before it starts others (their errors would be
    buried in the launcher's output): the output folder and the training data. Returns the "finished"
    message of a finished run resumed (nothing to launch), else None."""
    plan = plan_output_dir(run_args, args, model_args, recipe, main_process=True)
    if plan.finished is None:
        load_train_dataset(run_args, args)
    return plan.finished


# --------------------------------------------------------------------------------------------------
# The output folder: resume, finished runs, another recipe's run
# --------------------------------------------------------------------------------------------------

RUN_INFO = "run_info.json"  # written last, when a run has finished and saved its model
RESOLVED_RECIPE = "resolved_recipe.yaml"


@dataclass(frozen=True)
class OutputPlan:
    resume: str | None  # the checkpoint to resume from
    finished: str | None = None  # set when the run asked to resume has already finished: nothing to do


def plan_output_dir(
    run_args: RunArguments, args, model_args, recipe: dict[str, Any], main_process: bool
) -> OutputPlan:
    """Decide what the output folder's contents mean for this run, before anything is loaded.

    * resuming (`--resume_from_checkpoint last` or a folder) a run that already reached its `max_steps`: nothing
      to do (transformers would train one more step and change the model);
    * not resuming, and the folder holds a finished run of a different recipe: `RecipeError` naming the folder
      and the differing keys, unless `--overwrite_output_dir true` (then the earlier run's checkpoints and
      run_info.json are removed first, so a later resume cannot pick up the other recipe's checkpoints).
    """
    output_dir = Path(args.output_dir)
    resuming = args.resume_from_checkpoint is not None and str(args.resume_from_checkpoint).lower() not in (
        "",
        "false",
        "none",
    )
    resume = resolve_resume(args.resume_from_checkpoint, output_dir)
    if resuming:
        latest = str(args.resume_from_checkpoint).lower() in ("last", "true")
        return OutputPlan(resume, finished_message(output_dir, resume, args.max_steps, latest))
    info = output_dir / RUN_INFO
    if not info.is_file():
        return OutputPlan(None)
    differing = recipe_changes(output_dir, run_args, args, model_args, recipe)
    if differing and not run_args.overwrite_output_dir:
        shown = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in list(differing.items())[:8])
        more = f"; and {len(differing) - 8} more" if len(differing) > 8 else ""
        raise RecipeError(
            f"output_dir {str(output_dir)!r} holds a finished run of a different recipe ({shown}{more}); pass "
            "another --output_dir, --resume_from_checkpoint last to continue it, or --overwrite_output_dir true "
            "to replace it"
        )
    if run_args.overwrite_output_dir and main_process:
        remove_previous_run(output_dir)
    return OutputPlan(None)


def finished_message(output_dir: Path, checkpoint: str | None, max_steps: int, latest: bool = True) -> str | None:
    """The "nothing to do" message when the run to resume has reached its target step, else None.

    `latest`: resuming "the last checkpoint" (`last`/`true`), when a finished run's final save (run_info.json)
    also counts; a checkpoint folder named explicitly is judged by its own step alone.
    """
    step, target = None, None
    if checkpoint is not None:
        state = _read_json(Path(checkpoint) / "trainer_state.json") or {}
        step, target = state.get("global_step", 0), state.get("max_steps")
    info = _read_json(output_dir / RUN_INFO) if latest else None
    if info is not None and (step is None or info.get("global_step", 0) >= step):
        step = info.get("global_step", 0)
        target = target if target is not None else step
    if step is None:
        return None
    target = max_steps if max_steps > 0 else target  # -1: the epochs' step count the run itself computed
    if target is None or step < target:
        return None
    saved = (
        f"its model is in {output_dir}"
        if info is not None
        else f"its final model is not in {output_dir}; the weights are in {checkpoint}"
    )
    return (
        f"{output_dir} is a finished run (step {step} of max_steps {target}): nothing to resume, nothing changed; "
        f"{saved}. To train further, raise --max_steps."
    )


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def recipe_changes(output_dir: Path, run_args, args, model_args, recipe: dict[str, Any]) -> dict:
    """Training settings that differ between the finished run saved in `output_dir` and this one."""
    from .recipes import differing_settings, saved_training_settings, training_settings

    saved = output_dir / RESOLVED_RECIPE
    before = saved_training_settings(saved) if saved.is_file() else None
    if before is None:
        return {RESOLVED_RECIPE: ("missing or unreadable", "this run's recipe")}
    now = {**training_settings(run_args, args, model_args), "env": recipe.get("env", {})}
    return differing_settings(before, now)


def remove_previous_run(output_dir: Path) -> None:
    """Remove an earlier run's checkpoints and run_info.json (`--overwrite_output_dir true`)."""
    import shutil

    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    removed = sorted(output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"))
    for path in removed:
        shutil.rmtree(path)
    if (output_dir / RUN_INFO).is_file():
        (output_dir / RUN_INFO).unlink()
        removed.append(output_dir / RUN_INFO)
    if removed:
        names = ", ".join(p.name for p in removed)
        print(f"sas-trl: --overwrite_output_dir: removed the earlier run's {names} from {output_dir}", flush=True)


def prepare_hub(args, state) -> str | None:
    """The Hub repo to push to at the end (access checked now, in seconds), or None when not pushing.

    Trainer's own push-every-save is switched off: the upload happens once, after training, so a failed
    upload never interrupts training.
    """
    if not args.push_to_hub:
        return None
    repo_id = hub.hub_repo_id(args)
    if state.is_main_process:
        repo_id = hub.check_hub_access(repo_id, args.hub_token, args.hub_private_repo)
    args.push_to_hub = False
    return repo_id


def save_recipe(recipe: dict[str, Any], output_dir: Path, state) -> None:
    """Print the resolved recipe and save it as `resolved_recipe.yaml` (itself a valid recipe)."""
    if state.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / RESOLVED_RECIPE).write_text(dump_recipe(recipe))
        print(f"sas-trl: recipe resolved ({state.num_processes} process(es)):\n{dump_recipe(recipe)}", flush=True)


def model_init_kwargs(args, model_args) -> dict[str, Any]:
    """`args.model_init_kwargs` plus the recipe's `ModelConfig` loading fields (dtype, revision, attention)."""
    from_model_args = {
        "dtype": model_args.dtype,
        "revision": model_args.model_revision,
        "attn_implementation": model_args.attn_implementation,
    }
    return {**(args.model_init_kwargs or {}), **{k: v for k, v in from_model_args.items() if v is not None}}


def build_trainer(model_id: str, rewards: list, args, model_args, dataset):
    """`SASGRPOTrainer` with the project's console progress bar in place of transformers' printing."""
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
        peft_config=get_peft_config(model_args),
    )
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(SASProgressCallback())
    return trainer


def write_run_info(output_dir: Path, trainer, state, model_id: str, seconds: float) -> dict[str, Any]:
    info = {
        "num_processes": state.num_processes,
        "distributed_type": str(state.distributed_type),
        "global_step": trainer.state.global_step,
        "seconds": round(seconds, 1),
        "model": model_id,
    }
    # Every logged training metric, for reports over runs (`sas-trl compare`); run_info.json is written last.
    (output_dir / "log_history.json").write_text(json.dumps(trainer.state.log_history))
    (output_dir / RUN_INFO).write_text(json.dumps(info, indent=2))
    return info


def push(output_dir: Path, repo_id: str, args) -> None:
    """Upload the finished run; a failure keeps everything local and says how to retry."""
    try:
        url = hub.upload(output_dir, repo_id, args.hub_token, args.hub_private_repo)
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


def resolve_resume(value: str | None, output_dir: Path) -> str | None:
    """`last`/`true` -> the newest complete checkpoint in output_dir (None if there is none); a path must exist.

    A run killed while saving leaves a checkpoint folder without `trainer_state.json` (written last); it is
    skipped, so the run resumes from the save before it.
    """
    if value is None or str(value).lower() in ("", "false", "none"):
        return None
    if str(value).lower() in ("last", "true"):
        return last_complete_checkpoint(output_dir)
    if not (Path(value) / "trainer_state.json").is_file():
        raise RecipeError(f"resume_from_checkpoint: {value!r} is not a complete checkpoint folder")
    return value


def last_complete_checkpoint(output_dir: Path) -> str | None:
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    candidates = []
    for path in output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = path.name.rsplit("-", 1)[-1]
        if step.isdigit() and (path / "trainer_state.json").is_file():
            candidates.append((int(step), path))
    return str(max(candidates)[1]) if candidates else None


WARMUP_KEY = "sas_trl_warmup.json"  # next to the cached built-in model: the settings that made it


def warmup_settings(run_args: RunArguments, seed: int) -> dict[str, Any]:
    """Everything the cached warm-up of the built-in model depends on."""
    from ..task import TASK_MODEL_KWARGS

    return {
        "model": BUILTIN_MODEL,
        "model_kwargs": dict(TASK_MODEL_KWARGS),
        "seed": seed,
        "sft_warmup_steps": run_args.sft_warmup_steps,
        "builtin_min_terms": run_args.builtin_min_terms,
        "builtin_max_terms": run_args.builtin_max_terms,
    }


def cached_warmup_changes(base: Path, settings: dict[str, Any]) -> str | None:
    """None when `base` holds a warm-up made with `settings`, else why it must be rebuilt."""
    key = base / WARMUP_KEY
    if not (base / "config.json").is_file():
        return "no cached model" if not base.exists() else "an incomplete cached model"
    if not key.is_file():
        return "a cached model without a record of its settings"
    try:
        saved = json.loads(key.read_text())
    except ValueError:
        return f"an unreadable {WARMUP_KEY}"
    changed = {k: (saved.get(k), v) for k, v in settings.items() if saved.get(k) != v}
    if not changed:
        return None
    return (
        "a cached model made with other settings ("
        + ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        + ")"
    )


def prepare_model(run_args: RunArguments, model_args, args, state) -> str:
    """The model to train: a Hub id or folder as given, or the built-in tiny model (built and warmed up once).

    The built-in model is cached in `output_dir/base_model` with the settings that made it
    (`sas_trl_warmup.json`: seed, sft_warmup_steps, builtin_* terms); it is reused only when they match and
    rebuilt, with a message saying why, when they differ.
    """
    if model_args.model_name_or_path != BUILTIN_MODEL:
        return model_args.model_name_or_path
    base = Path(args.output_dir) / "base_model"
    settings = warmup_settings(run_args, args.seed)
    with state.main_process_first():  # one process builds it, the others load the saved copy
        if state.is_main_process:
            reason = cached_warmup_changes(base, settings)
            if reason is not None:
                if base.exists():
                    import shutil

                    print(f"sas-trl: rebuilding {base}: it held {reason}", flush=True)
                    shutil.rmtree(base)
                build_builtin_model(base, run_args, args.seed)
                (base / WARMUP_KEY).write_text(json.dumps(settings, indent=2) + "\n")  # last: marks it complete
            else:
                print(f"sas-trl: reusing the warmed-up {BUILTIN_MODEL} in {base} (same settings)", flush=True)
    return str(base)


def build_builtin_model(path: Path, run_args: RunArguments, seed: int) -> None:
    from ..task import build_task_model, evaluate, sft_warmup
    from ..tiny import build_tokenizer

    tokenizer = build_tokenizer()
    model = build_task_model(tokenizer, seed=seed)
    sft_steps, task = run_args.sft_warmup_steps, run_args.builtin_task()
    if sft_steps:
        start = time.perf_counter()
        print(f"sas-trl: supervised warm-up of {BUILTIN_MODEL} on the built-in task, {sft_steps} steps", flush=True)
        model = sft_warmup(model, tokenizer, sft_steps, seed=seed, task=task, log_every=max(1, sft_steps // 5))
        result = evaluate(model, tokenizer, n=100, greedy=True, task=task)
        print(
            f"sas-trl: warm-up done in {time.perf_counter() - start:.0f} s; greedy accuracy "
            f"{result.accuracy:.2f}, {result.mean_tokens:.1f} tokens",
            flush=True,
        )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def load_train_dataset(run_args: RunArguments, args):
    """GRPO prompts (`prompt` messages, `answer`): the built-in task or a DeepScaleR-style table."""
    if run_args.dataset_name == BUILTIN_DATASET:
        from ..task import grpo_dataset

        size = min(run_args.builtin_num_problems, run_args.max_train_samples or run_args.builtin_num_problems)
        return grpo_dataset(size, seed=args.seed, task=run_args.builtin_task())
    from ..data import load_deepscaler

    return load_deepscaler(
        run_args.dataset_name,
        split=run_args.dataset_split,
        prompt_template=run_args.prompt_template,
        problem_column=run_args.problem_column,
        answer_column=run_args.answer_column,
        limit=run_args.max_train_samples,
    )


def drop_long_prompts(dataset, model_id: str, model_args, max_tokens: int):
    """Keep problems whose chat-templated prompt fits in `max_tokens` (the paper's 1024-token prompt limit)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_id, revision=model_args.model_revision)

    def fits(batch):
        ids = tokenizer.apply_chat_template(batch["prompt"], add_generation_prompt=True, tokenize=True)
        return [len(x) <= max_tokens for x in ids]

    kept = dataset.filter(fits, batched=True)
    if len(kept) == 0:
        raise RecipeError(f"max_prompt_tokens={max_tokens}: no prompt of the dataset is that short")
    return kept
