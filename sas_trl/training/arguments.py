"""The recipe keys that are neither `SASConfig` nor `ModelConfig` (`RunArguments`), and every recipe key.

`dataclass_types()` is the one list of dataclasses a recipe fills; `all_fields()` maps each key to its field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..constants import BUILTIN_DATASET, BUILTIN_MODEL, DEEPSCALER_ID, PROMPT_TEMPLATE, REWARD_FORMATS
from ..errors import RecipeError
from ..rewards import check_reward_names


@dataclass
class RunArguments:
    """What to train on and how to launch: the recipe keys that are neither `SASConfig` nor `ModelConfig`."""

    dataset_name: str = field(
        default=DEEPSCALER_ID,
        metadata={"help": f"Hub id, local file (.jsonl, .json, .parquet) or {BUILTIN_DATASET!r} (the built-in task)."},
    )
    dataset_split: str = field(default="train", metadata={"help": "Split of a Hub dataset."})
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
            "help": "Reward functions by name (sas_trl.rewards.REWARDS), the correctness reward first: it "
            "defines SAS's 'correct'. Weights: `reward_weights`."
        },
    )
    reward_format: str = field(
        default="r1",
        metadata={"help": "'r1': grade the text after </think> (required); 'plain': grade the whole completion."},
    )
    builtin_num_problems: int = field(default=4096, metadata={"help": f"Problems generated for {BUILTIN_DATASET!r}."})
    builtin_min_terms: int = field(default=2, metadata={"help": f"Fewest addends of a {BUILTIN_DATASET!r} problem."})
    builtin_max_terms: int = field(default=8, metadata={"help": f"Most addends of a {BUILTIN_DATASET!r} problem."})
    sft_warmup_steps: int = field(
        default=0,
        metadata={
            "help": f"For {BUILTIN_MODEL!r}: supervised steps on the built-in task before RL (cached in "
            "output_dir/base_model with the settings that made it; rebuilt when seed, sft_warmup_steps or the "
            "builtin_*_terms differ)."
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
            "help": "Train even when output_dir holds a finished run of a different recipe (its checkpoints and "
            "run_info.json are removed first). Without it, such a folder is refused unless resuming."
        },
    )

    # -- length-aware baselines (docs/baselines.md) ---------------------------------------------------------
    prompt_transforms: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Prompt transforms by name, applied in order (sas_trl.transforms.TRANSFORMS): l1_budget, "
            "thinkprune_system, lapo_target."
        },
    )
    l1_alpha: float = field(
        default=0.0003, metadata={"help": "L1: reward per token of distance to the budget (L1-Max's release: 0.002)."}
    )
    l1_max_form: str = field(
        default="multiplicative",
        metadata={"help": "L1-Max: 'multiplicative' (s * 1[correct], the release) or 'additive' (s + 1[correct])."},
    )
    l1_budget_range: list[int] = field(
        default_factory=lambda: [100, 4000], metadata={"help": "L1: budget N drawn uniformly from [low, high]."}
    )
    l1_max_fraction: float = field(
        default=0.0, metadata={"help": "L1: probability that a prompt asks for 'maximum N' (L1-Max data: 0.5)."}
    )
    lapo_percentiles: list[float] = field(
        default_factory=lambda: [30.0, 70.0], metadata={"help": "LAPO stage 1: percentiles bounding the band."}
    )
    lapo_margin: float = field(
        default=100.0, metadata={"help": "LAPO stage 1: tokens outside the band over which the score falls to 0."}
    )
    lapo_band_weight: float = field(default=0.7, metadata={"help": "LAPO stage 1: weight of the band score."})
    lapo_target_weight: float = field(default=0.8, metadata={"help": "LAPO stage 2: weight of the Gaussian."})
    lapo_sigma: float = field(default=120.0, metadata={"help": "LAPO stage 2: Gaussian width in tokens."})
    lapo_targets: str | None = field(
        default=None, metadata={"help": "LAPO stage 2: the stage-1 output folder (or its lapo_targets.json)."}
    )
    overlong_cache: int | None = field(
        default=None,
        metadata={
            "help": "DAPO overlong punishment: the last tokens before max_completion_length over which it falls "
            "from 0 to -1; unset: a fifth of max_completion_length (DAPO's 4096 of 20480)."
        },
    )

    def __post_init__(self):
        if isinstance(self.accelerate_config, str) and self.accelerate_config.lower() in ("", "none", "null"):
            self.accelerate_config = None  # lets a flag switch off the recipe's launch config
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
        if self.sft_warmup_steps < 0:
            raise RecipeError(f"sft_warmup_steps={self.sft_warmup_steps} is not valid; allowed values: >= 0")
        self._check_baselines()

    def _check_baselines(self) -> None:
        from ..rewards.length import L1_MAX_FORMS
        from ..transforms import check_transform_names

        check_transform_names(self.prompt_transforms)
        needs = {"l1": "l1_budget", "lapo_target": "lapo_target"}  # reward -> the transform that adds its column
        for reward, transform in needs.items():
            if reward in self.reward_funcs and transform not in self.prompt_transforms:
                raise RecipeError(f"reward_funcs: {reward!r} needs prompt_transforms to include {transform!r}")
        if self.l1_max_form not in L1_MAX_FORMS:
            raise RecipeError(
                f"l1_max_form={self.l1_max_form!r} is not valid; allowed values: {', '.join(L1_MAX_FORMS)}"
            )
        checks = {
            "l1_alpha": (self.l1_alpha, self.l1_alpha > 0, "> 0"),
            "l1_max_fraction": (self.l1_max_fraction, 0 <= self.l1_max_fraction <= 1, "in [0, 1]"),
            "l1_budget_range": (
                self.l1_budget_range,
                len(self.l1_budget_range) == 2 and 0 <= self.l1_budget_range[0] <= self.l1_budget_range[1],
                "[low, high] with 0 <= low <= high",
            ),
            "lapo_percentiles": (
                self.lapo_percentiles,
                len(self.lapo_percentiles) == 2 and 0 <= self.lapo_percentiles[0] < self.lapo_percentiles[1] <= 100,
                "[low, high] with 0 <= low < high <= 100",
            ),
            "lapo_margin": (self.lapo_margin, self.lapo_margin > 0, "> 0"),
            "lapo_band_weight": (self.lapo_band_weight, self.lapo_band_weight >= 0, ">= 0"),
            "lapo_target_weight": (self.lapo_target_weight, self.lapo_target_weight >= 0, ">= 0"),
            "lapo_sigma": (self.lapo_sigma, self.lapo_sigma > 0, "> 0"),
            "overlong_cache": (self.overlong_cache, self.overlong_cache is None or self.overlong_cache >= 1, ">= 1"),
        }
        for name, (value, ok, allowed) in checks.items():
            if not ok:
                raise RecipeError(f"{name}={value} is not valid; allowed values: {allowed}")
        if "lapo_target" in self.prompt_transforms:
            from ..transforms import load_lapo_targets

            if self.lapo_targets is None:
                raise RecipeError("prompt_transforms: 'lapo_target' needs lapo_targets (the stage-1 output folder)")
            load_lapo_targets(self.lapo_targets)  # exists and parses, before anything loads

    def builtin_task(self):
        """The built-in task's generator settings."""
        from ..task import AdditionTask

        return AdditionTask(min_terms=self.builtin_min_terms, max_terms=self.builtin_max_terms)


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
