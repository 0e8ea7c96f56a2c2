"""The recipe keys that are neither `SASConfig` nor `ModelConfig` (`RunArguments`), and every recipe key.

`dataclass_types()` is the one list of dataclasses a recipe fills; `all_fields()` maps each key to its field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..constants import BUILTIN_DATASET, BUILTIN_MODEL, DEEPSCALER_ID, PROMPT_TEMPLATE, REWARD_FORMATS
from ..errors import RecipeError
from ..rewards import check_reward_names
from ..rewards.deadline import DEFAULT_REWARD_TIMEOUT


@dataclass
class RunArguments:
    """What to train on and how to launch: the recipe keys that are neither `SASConfig` nor `ModelConfig`."""

    dataset_name: str = field(
        default=DEEPSCALER_ID,
        metadata={"help": f"Hub id, local file (.jsonl, .json, .parquet) or {BUILTIN_DATASET!r} (the built-in task)."},
    )
    dataset_split: str = field(default="train", metadata={"help": "Split of a Hub dataset."})
    # TRL's script keys (`trl grpo`'s ScriptArguments), with TRL's meaning.
    dataset_config: str | None = field(
        default=None, metadata={"help": "Configuration name of a Hub dataset (TRL's dataset_config)."}
    )
    dataset_train_split: str | None = field(
        default=None, metadata={"help": "TRL's name for dataset_split: the split to train on."}
    )
    dataset_test_split: str = field(
        default="test",
        metadata={"help": "Split evaluated on when eval_strategy is not 'no' (TRL's dataset_test_split)."},
    )
    prompt_template: str = field(
        default=PROMPT_TEMPLATE, metadata={"help": "User message; '{problem}' is replaced by the problem text."}
    )
    problem_column: str = field(default="problem", metadata={"help": "Column holding the problem text."})
    answer_column: str = field(default="answer", metadata={"help": "Column holding the gold answer(s)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N problems."})
    max_prompt_tokens: int | None = field(
        default=None, metadata={"help": "Drop problems whose templated prompt is longer than this many tokens."}
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy"],
        metadata={
            "help": "Reward functions by registered name (sas_trl.rewards.REWARDS) or dotted import path "
            "(my_package.rewards.brevity), the correctness reward first: it defines SAS's 'correct'. Weights: "
            "`reward_weights`; parameters: `reward_params`."
        },
    )
    reward_format: str = field(
        default="r1",
        metadata={"help": "'r1': grade the text after </think> (required); 'plain': grade the whole completion."},
    )
    reward_timeout: float = field(
        default=DEFAULT_REWARD_TIMEOUT,
        metadata={
            "help": "Seconds one call of a reward of your own (a dotted path in reward_funcs) may take, for one batch "
            "of completions; past it training fails naming the reward. The built-in `accuracy` has its own "
            "per-answer deadline."
        },
    )
    builtin_num_problems: int = field(default=4096, metadata={"help": f"Problems generated for {BUILTIN_DATASET!r}."})
    builtin_min_terms: int = field(default=2, metadata={"help": f"Fewest addends of a {BUILTIN_DATASET!r} problem."})
    builtin_max_terms: int = field(default=8, metadata={"help": f"Most addends of a {BUILTIN_DATASET!r} problem."})
    builtin_double_check_traces: float = field(
        default=0.5,
        metadata={
            "help": f"Share of the warm-up's worked {BUILTIN_DATASET!r} solutions that carry redundant "
            "'Let me double-check' steps (the redundancy a short budget can compress)."
        },
    )
    sft_warmup_steps: int = field(
        default=0,
        metadata={
            "help": f"For {BUILTIN_MODEL!r}: supervised steps on the built-in task before RL, done once per "
            "settings (seed, sft_warmup_steps, builtin_*_terms, builtin_double_check_traces) and cached for all "
            "runs in ~/.cache/sas-trl/warmup "
            "($SAS_TRL_CACHE overrides the folder); each run trains from its copy in output_dir/base_model."
        },
    )
    num_processes: int | None = field(
        default=None,
        metadata={
            "help": "Processes to launch (GPUs: accelerate launch; CPU: torchrun). Unset: one, or the "
            "accelerate config's count."
        },
    )
    accelerate_config: str | None = field(
        default=None, metadata={"help": "Accelerate config file (recipes/accelerate/*.yaml) to launch with."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Train from step 0 even when output_dir holds a run, finished or not (its checkpoints and "
            "run_info.json are removed first). Without it, such a folder is refused unless resuming."
        },
    )
    resume_with_changes: bool = field(
        default=False,
        metadata={
            "help": "Resume even when the training settings differ from the saved run's (other than max_steps); "
            "the earlier resolved recipe is kept as resolved_recipe.until_step_N.yaml (resumed from step N again: "
            "resolved_recipe.until_step_N.2.yaml, and so on; no record replaces another). Without it, refused."
        },
    )
    resume_without_optimizer: bool = field(
        default=False,
        metadata={
            "help": "Resume from a checkpoint that holds no optimizer state (save_only_model), starting a new "
            "optimizer. Without it, such a checkpoint is refused."
        },
    )

    # -- length-aware baselines (docs/baselines.md) ---------------------------------------------------------
    reward_params: dict | str | None = field(
        default_factory=dict,
        metadata={
            "help": "Parameters of the rewards in reward_funcs, by reward: {l1: {alpha: 0.0003}} (each reward's "
            "parameters: docs/baselines.md). On the command line a YAML/JSON mapping, which replaces the recipe's."
        },
    )
    prompt_transforms: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Prompt transforms by name, applied in order (sas_trl.transforms.TRANSFORMS): l1_budget, "
            "thinkprune_system, lapo_target."
        },
    )
    transform_params: dict | str | None = field(
        default_factory=dict,
        metadata={
            "help": "Parameters of the prompt_transforms, by transform: {l1_budget: {budget_range: [100, 4000]}}. "
            "On the command line a YAML/JSON mapping, which replaces the recipe's."
        },
    )

    def __post_init__(self):
        if isinstance(self.accelerate_config, str) and self.accelerate_config.lower() in ("", "none", "null"):
            self.accelerate_config = None  # lets a flag switch off the recipe's launch config
        if self.dataset_train_split is not None:  # TRL's key: the same setting as dataset_split
            if self.dataset_split not in ("train", self.dataset_train_split):
                raise RecipeError(
                    f"dataset_train_split={self.dataset_train_split!r} and dataset_split={self.dataset_split!r} "
                    "name the same setting (TRL's name and ours); set one of them"
                )
            self.dataset_split = self.dataset_train_split
        if self.reward_format not in REWARD_FORMATS:
            allowed = ", ".join(repr(f) for f in REWARD_FORMATS)
            raise RecipeError(f"reward_format={self.reward_format!r} is not valid; allowed values: {allowed}")
        if "{problem}" not in self.prompt_template:
            raise RecipeError(f"prompt_template must contain '{{problem}}', got {self.prompt_template!r}")
        check_reward_names(self.reward_funcs)
        for name in ("max_train_samples", "max_prompt_tokens", "builtin_num_problems", "num_processes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise RecipeError(f"{name}={value} is not valid; allowed values: an integer >= 1")
        if not 2 <= self.builtin_min_terms <= self.builtin_max_terms:
            raise RecipeError(
                f"builtin_min_terms={self.builtin_min_terms}, builtin_max_terms={self.builtin_max_terms} are not "
                "valid; allowed values: 2 <= builtin_min_terms <= builtin_max_terms"
            )
        if not (isinstance(self.reward_timeout, int | float) and 0 < self.reward_timeout < float("inf")):
            raise RecipeError(
                f"reward_timeout={self.reward_timeout} is not valid; allowed values: a number of seconds > 0"
            )
        if not 0 <= self.builtin_double_check_traces <= 1:
            raise RecipeError(
                f"builtin_double_check_traces={self.builtin_double_check_traces} is not valid; allowed values: "
                "a share in [0, 1]"
            )
        if self.sft_warmup_steps < 0:
            raise RecipeError(f"sft_warmup_steps={self.sft_warmup_steps} is not valid; allowed values: >= 0")
        self._check_baselines()

    def _check_baselines(self) -> None:
        from ..transforms import check_rewards_and_transforms

        self.reward_params, self.transform_params = check_rewards_and_transforms(
            self.reward_funcs, self.reward_params, self.prompt_transforms, self.transform_params
        )

    def builtin_task(self):
        """The built-in task's generator settings."""
        from ..task import AdditionTask

        return AdditionTask(
            min_terms=self.builtin_min_terms,
            max_terms=self.builtin_max_terms,
            double_check_traces=self.builtin_double_check_traces,
        )


# Keys of TRL's own `trl grpo` script that sas-trl does not take, and why (docs/trl_recipes.md).
TRL_ONLY_KEYS = {
    "datasets": "dataset mixtures are not supported; name one dataset in dataset_name",
    "dataset_streaming": "the data are loaded whole (prompts are filtered by length first); drop the key",
    "streaming": "the data are loaded whole (prompts are filtered by length first); drop the key",
    "test_split_size": "no split is carved out of the training data; name a split in dataset_test_split",
    "reward_model_name_or_path": "rewards are functions (reward_funcs: registered names or dotted paths)",
    "ignore_bias_buffers": "a DDP setting of TRL's scripts that GRPO does not need; drop the key",
}


def dataclass_types() -> tuple[type, ...]:
    """The dataclasses a recipe fills, in the order `parse` returns them (TRL and SASConfig imported late)."""
    from trl import ModelConfig

    from ..config import SASConfig

    return (RunArguments, SASConfig, ModelConfig)


def all_fields() -> dict[str, tuple[type, dataclasses.Field]]:
    """Every recipe key: name -> (dataclass, field)."""
    fields = {}
    for cls in dataclass_types():
        for f in dataclasses.fields(cls):
            if f.init:
                fields.setdefault(f.name, (cls, f))
    return fields
