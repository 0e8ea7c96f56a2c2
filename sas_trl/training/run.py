"""`sas-trl train`: a recipe in, a trained (and optionally pushed) model out, in steps a reader can name."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..constants import BUILTIN_DATASET, BUILTIN_MODEL
from ..errors import RecipeError, UserError
from . import hub
from .recipes import RunArguments, dump_recipe


def run(run_args: RunArguments, args, model_args, recipe: dict[str, Any]) -> Path:
    """Train with `SASGRPOTrainer`; returns the output folder. `args` is the `SASConfig`.

    The steps, in order: Hub access (seconds, before anything loads), the recipe saved, the training data
    loaded and checked, the model prepared (the built-in one is built and warmed up), the rewards built,
    training, then the model, its card and (optionally) the upload.
    """
    import torch
    from accelerate import PartialState

    from ..rewards import get_reward_funcs
    from ..transforms import apply_transforms
    from . import lapo

    state = PartialState()
    output_dir = Path(args.output_dir)
    repo_id = prepare_hub(args, state)
    if args.use_cpu or not torch.cuda.is_available():
        torch.set_num_threads(1)  # tiny models on shared CPU cores: one thread is fastest
    save_recipe(recipe, output_dir, state)

    dataset = load_train_dataset(run_args, args)  # bad data fails here, before any model work
    dataset = apply_transforms(dataset, run_args, args)  # the baselines' prompt changes (docs/baselines.md)
    model_id = prepare_model(run_args, model_args, args, state)
    if run_args.max_prompt_tokens is not None:
        dataset = drop_long_prompts(dataset, model_id, model_args, run_args.max_prompt_tokens)
    rewards = get_reward_funcs(run_args, args)
    trainer = build_trainer(model_id, rewards, args, model_args, dataset)
    lapo.save_targets_with_checkpoints(trainer, rewards)

    start = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=resolve_resume(args.resume_from_checkpoint, output_dir))
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
        (output_dir / "resolved_recipe.yaml").write_text(dump_recipe(recipe))
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
    (output_dir / "run_info.json").write_text(json.dumps(info, indent=2))
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


def prepare_model(run_args: RunArguments, model_args, args, state) -> str:
    """The model to train: a Hub id or folder as given, or the built-in tiny model (built and warmed up once)."""
    if model_args.model_name_or_path != BUILTIN_MODEL:
        return model_args.model_name_or_path
    base = Path(args.output_dir) / "base_model"
    with state.main_process_first():  # one process builds it, the others load the saved copy
        if not (base / "config.json").is_file() and state.is_main_process:
            build_builtin_model(base, run_args, args.seed)
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
