"""SAS in verl 0.9 without a fork: the `sas_sync` trainer, which verl finds through its `verl.plugins` entry point.

verl imports every `verl.plugins` entry point when `verl` itself is imported, in every process. Importing this
module checks the installed verl, then registers `SASPPOTrainerSync` under the name `sas_sync` in verl's trainer
registry, selected with `trainer.v1.trainer_mode=sas_sync`. The trainer is verl's synchronous PPO trainer with one
hook overridden: `_compute_advantage` runs verl's own, then replaces each response's advantages by SAS's, computed
with the same rule object as the TRL trainer (`sas_trl.core.SASRule`):

* steps: `SASRule.segment` on the response ids and mask, with the tokenizer's own vocabulary and the configured
  delimiter and think-end (no hard-coded token ids);
* confidence: `old_log_probs`, the log-probs verl's actor recomputes for the rollout policy before the update;
* correctness: the response's score (its `rm_scores` summed, what GRPO normalises) `>= correct_threshold` (default
  1.0, as `sas_correct_threshold` in TRL); NaN counts as failed;
* truncation: `sas_trl.rollouts.truncated_rows` (last valid token neither a stop id nor pad), with every stop id
  the rollout engine stops at: the tokenizer's EOS and the model's generation config's `eos_token_id` (a list for
  models with several stop ids);
* padding: the rows verl adds to make the batch divisible across its workers (tagged `is_padding`, no valid token)
  are left out of the metrics, so `sas/*` counts real rollouts only.

Settings come from `trainer.v1.sas_sync` (`+trainer.v1.sas_sync.ratio=0.3`, the names of `SASRule`'s fields plus
`correct_threshold`), validated by `SASRule` before any model work. Metrics are logged under the TRL trainer's
names (`sas/zeroed_frac`, ...). verl logs a plug-in that fails to import only at DEBUG level, so an unusable verl is
reported here at WARNING and `sas_sync` is registered anyway as a trainer that refuses to start, naming the problem.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from ..core import PREFIX, SASRule, SASRuleError
from ..errors import UserError
from ..rollouts import truncated_rows
from ..sas_metrics import RATIOS, BatchCounts

logger = logging.getLogger(__name__)

TRAINER_NAME = "sas_sync"
SETTINGS_PATH = f"trainer.v1.{TRAINER_NAME}"
# `_compute_advantage` is private: the hook is tied to the minor release it was written against.
VERL_VERSIONS = (">=0.9", "<0.10")
# The fields SAS reads back from verl's TransferQueue after verl's own advantage pass.
FIELDS = ("responses", "response_mask", "old_log_probs", "rm_scores", "advantages")
# The TRL trainer's metrics (sas_trl.sas_metrics): the same names, numerators and denominators, per rollout batch.
METRIC_NAMES = tuple(RATIOS)


# --------------------------------------------------------------------------------------------------
# Settings: verl's config section -> the one SAS rule
# --------------------------------------------------------------------------------------------------


def setting_names() -> tuple[str, ...]:
    """The keys `trainer.v1.sas_sync` accepts for SAS: `SASRule`'s field names, then `correct_threshold`."""
    return (*(field.name for field in SASRule.fields()), "correct_threshold")


def sas_settings(section: Mapping[str, Any] | None) -> tuple[SASRule, float]:
    """The SAS rule and correctness threshold from a `trainer.v1.sas_sync` mapping (missing keys keep defaults).

    Raises:
        SASRuleError (a `UserError`): a section that is not a mapping (a list, a text, a number), an unknown key,
            or a value `SASRule` refuses (its message, naming the `sas_*` setting), prefixed with where it was read.
    """
    if section is not None and not isinstance(section, Mapping):  # `+trainer.v1.sas_sync=0.3`: `.ratio` forgotten
        number = isinstance(section, int | float) and not isinstance(section, bool)
        hint = f"; did you mean +{SETTINGS_PATH}.ratio={section!r}?" if number else ""
        raise SASRuleError(
            f"{SETTINGS_PATH} must be a mapping of SAS settings (+{SETTINGS_PATH}.ratio=0.3, one key per "
            f"setting: {', '.join(setting_names())}), got {type(section).__name__} {section!r}{hint}"
        )
    section = dict(section or {})
    names = setting_names()
    unknown = sorted(set(section) - set(names), key=str)  # keys of any type: YAML and Hydra allow numbers
    if unknown:
        raise SASRuleError(
            f"{SETTINGS_PATH}.{unknown[0]} is not a SAS setting; allowed keys: {', '.join(names)} (verl's own sync "
            "settings stay under trainer.v1.sync)"
        )
    given = section.pop("correct_threshold", 1.0)
    try:
        threshold = float(given)
    except (TypeError, ValueError):
        threshold = math.nan
    if isinstance(given, bool) or not math.isfinite(threshold):
        raise SASRuleError(
            f"{SETTINGS_PATH}: {PREFIX}correct_threshold={given!r} is not valid; allowed values: a finite number"
        )
    try:
        rule = SASRule.from_settings({PREFIX + name: value for name, value in section.items()})
    except SASRuleError as err:
        raise SASRuleError(f"{SETTINGS_PATH}: {err}") from err
    if rule.needs_labels:
        raise SASRuleError(
            f"{SETTINGS_PATH}: {PREFIX}selection={rule.selection!r} needs ground-truth step labels, which only "
            "`sas-trl train` on the built-in tasks has"
        )
    return rule, threshold


# --------------------------------------------------------------------------------------------------
# The computation: padded (B, T) tensors in, SAS advantages and metrics out (no verl needed)
# --------------------------------------------------------------------------------------------------


def sas_advantages(
    advantages: torch.Tensor,
    responses: torch.Tensor,
    response_mask: torch.Tensor,
    old_log_probs: torch.Tensor,
    scores: torch.Tensor,
    tokenizer,
    rule: SASRule,
    correct_threshold: float = 1.0,
    generator: torch.Generator | None = None,
    eos_token_ids: Iterable[int] | None = None,
    is_padding: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """verl's advantages with the SAS-selected tokens set to 0, and SAS's metrics for the batch.

    Args:
        advantages: FloatTensor (B, T), verl's advantages (0 on padding).
        responses: LongTensor (B, T), right-padded response ids.
        response_mask: (B, T), nonzero for the tokens the loss sees.
        old_log_probs: FloatTensor (B, T), the rollout policy's log-probs (step confidence).
        scores: FloatTensor (B,), each response's score; correct iff `>= correct_threshold` (NaN: failed).
        tokenizer: the rollout tokenizer (a processor's `.tokenizer` is used when present).
        rule: the SAS rule.
        generator: draws the random-selection ablation's keys (`rule.draws_random_keys`); verl computes advantages
            once per rollout batch, so keys drawn here are drawn once per rollout.
        eos_token_ids: every id the rollout stops at (`stop_token_ids`); default the tokenizer's EOS only.
        is_padding: BoolTensor (B,), rows verl added to fill the batch (no valid token): not counted in the metrics.

    Returns:
        advantages: FloatTensor (B, T), same dtype as given; untouched when `rule.enabled` is False.
        metrics: the TRL trainer's `sas/*` metrics for this batch; one whose denominator is 0 is left out.
    """
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    step_ids = rule.segment(responses, response_mask, tokenizer)
    is_correct = scores.to(step_ids.device) >= correct_threshold  # NaN compares False: failed
    stop_ids = tokenizer.eos_token_id if eos_token_ids is None else eos_token_ids
    is_truncated = truncated_rows(responses, response_mask, stop_ids, tokenizer.pad_token_id)
    if rule.enabled:
        zero = rule.zero_mask(
            step_ids,
            old_log_probs,
            is_correct,
            is_truncated=is_truncated,
            generator=generator if rule.draws_random_keys else None,
        )
        advantages = advantages.masked_fill(zero, 0.0)
    else:
        zero = torch.zeros_like(step_ids, dtype=torch.bool)
    real = slice(None) if is_padding is None else ~is_padding.to(step_ids.device)
    counted = (zero[real], (response_mask != 0)[real], step_ids[real], is_correct[real], is_truncated[real])
    return advantages, _metrics(*counted)


def _metrics(zero, valid, step_ids, is_correct, is_truncated) -> dict[str, float]:
    """The `sas/*` ratios of the batch's counts (the TRL trainer's `BatchCounts`; verl logs its own clip metrics)."""
    none = torch.zeros_like(valid)  # no clip flags: verl's actor logs its own clip fractions
    counts = BatchCounts.of(zero, valid, step_ids, is_correct, is_truncated, (none, none, none))
    counts = BatchCounts.from_row(counts.stack().tolist())  # one read-back
    return {
        name: getattr(counts, numerator) / getattr(counts, denominator)
        for name, (numerator, denominator) in RATIOS.items()
        if getattr(counts, denominator)
    }


def stop_token_ids(tokenizer, generation_config=None) -> tuple[int, ...]:
    """Every id a rollout may end with: the tokenizer's `eos_token_id` and the generation config's (an int or a
    list; vLLM and SGLang stop at each of them), sorted, without duplicates."""
    ids = []
    for source in (tokenizer, generation_config):
        value = getattr(source, "eos_token_id", None)
        ids += [] if value is None else [value] if isinstance(value, int) else list(value)
    return tuple(sorted({int(i) for i in ids}))


def padded(tensor: torch.Tensor, padding: float = 0.0) -> torch.Tensor:
    """(B, T) from a field as verl's TransferQueue returns it: a nested (jagged) tensor, or already dense."""
    return torch.nested.to_padded_tensor(tensor, padding) if tensor.is_nested else tensor


def like(template: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`values` (B, T) in `template`'s form: nested with the template's row lengths, or dense as given."""
    if not template.is_nested:
        return values
    offsets = template.offsets()
    lengths = offsets.diff()
    keep = torch.arange(values.size(1), device=values.device).unsqueeze(0) < lengths.to(values.device).unsqueeze(1)
    # Row-major boolean indexing concatenates the rows' valid prefixes: the jagged layout's values.
    return torch.nested.nested_tensor_from_jagged(values[keep], offsets=offsets.to(values.device))


def random_generator(seed: int | None, step: int) -> torch.Generator:
    """The random-selection ablation's generator for a training step: a function of (seed, step) only, so a resumed
    run draws what an uninterrupted one draws."""
    entropy = [0 if seed is None else int(seed), int(step)]
    return torch.Generator().manual_seed(int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]))


# --------------------------------------------------------------------------------------------------
# The self-check: verl logs a failed plug-in import only at DEBUG, so say here what is wrong
# --------------------------------------------------------------------------------------------------


def verl_problem() -> str | None:
    """Why the installed verl cannot run `sas_sync`, or None when it can."""
    import verl
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion

    version = str(getattr(verl, "__version__", "unknown"))
    try:
        supported = SpecifierSet(",".join(VERL_VERSIONS)).contains(version, prereleases=True)
    except InvalidVersion:
        supported = False
    if not supported:
        return (
            f"sas_sync needs verl{','.join(VERL_VERSIONS)} (it overrides the sync trainer's private "
            f"_compute_advantage), found verl {version}: pip install 'sas-trl[verl]'"
        )
    try:
        import transfer_queue
        from verl.trainer.ppo.v1 import trainer_base, trainer_sync
    except ImportError as err:
        return f"verl {version}'s trainer modules do not import ({err}): pip install 'sas-trl[verl]'"
    missing = [
        name
        for owner, name in (
            (trainer_sync, "PPOTrainerSync"),
            (trainer_base, "register_trainer"),
            (trainer_base, "tq"),
            (transfer_queue, "kv_batch_get"),
            (transfer_queue, "kv_batch_put"),
        )
        if not hasattr(owner, name)
    ]
    if not missing and not callable(getattr(trainer_sync.PPOTrainerSync, "_compute_advantage", None)):
        missing.append("PPOTrainerSync._compute_advantage")
    if missing:
        return f"verl {version} lacks what sas_sync uses: {', '.join(missing)}"
    return None


def _register_refusal(problem: str) -> None:
    """Register `sas_sync` as a trainer that refuses to start (where verl's registry exists), and warn now."""
    logger.warning("sas-trl's verl plug-in is not usable: %s", problem)
    try:
        from verl.trainer.ppo.v1.trainer_base import PPOTrainer, register_trainer
    except ImportError:
        return

    class SASUnusable(PPOTrainer):
        def __new__(cls, *args, **kwargs):  # before ABC's check for the hooks this stand-in never defines
            raise UserError(f"trainer.v1.trainer_mode={TRAINER_NAME} cannot run: {problem}")

    register_trainer(TRAINER_NAME)(SASUnusable)


_PROBLEM = verl_problem()
if _PROBLEM is not None:
    _register_refusal(_PROBLEM)
    raise ImportError(_PROBLEM)  # verl's loader logs it (DEBUG) and goes on; selecting sas_sync raises the message

from tensordict import TensorDict  # noqa: E402
from verl.trainer.ppo.v1 import trainer_base  # noqa: E402
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync  # noqa: E402


@trainer_base.register_trainer(TRAINER_NAME)
class SASPPOTrainerSync(PPOTrainerSync):
    """verl's synchronous PPO trainer with Step-level Advantage Selection applied to the advantages it computes.

    Select it with `trainer.v1.trainer_mode=sas_sync`; SAS settings under `trainer.v1.sas_sync` (`setting_names()`),
    verl's sync-trainer settings under `trainer.v1.sync`, as for `sync`.
    """

    def __init__(self, config):
        self._init_sas(config)  # bad settings fail here, before verl starts any worker
        super().__init__(config)

    # verl's base trainer branches on `self.trainer_mode == "sync"` (replay buffer, refills, weight syncs) and reads
    # the mode's section for its own settings: sas_sync must take every sync branch and read `trainer.v1.sync`.
    @property
    def trainer_mode(self) -> str:
        return "sync"

    @trainer_mode.setter
    def trainer_mode(self, configured: str) -> None:
        pass  # PPOTrainer.__init__ assigns the configured name, "sas_sync"

    def _init_tokenizer(self) -> None:
        """verl's own, then the stop ids the rollout engine uses (the model's generation config), for truncation."""
        super()._init_tokenizer()
        self.sas_stop_ids = stop_token_ids(self.tokenizer, self._generation_config())

    def _generation_config(self):
        """The model's generation config as verl's rollout reads it (None when the model has none)."""
        from verl.utils.fs import copy_to_local
        from verl.utils.model import get_generation_config

        model = self.config.actor_rollout_ref.model
        local = copy_to_local(model.get("hf_config_path") or model.path, use_shm=model.get("use_shm", False))
        return get_generation_config(local, trust_remote_code=model.get("trust_remote_code", False))

    def _init_sas(self, config) -> None:
        from omegaconf import DictConfig, OmegaConf

        section = config.trainer.v1.get(TRAINER_NAME)
        if isinstance(section, DictConfig):
            section = OmegaConf.to_container(section, resolve=True)
        self.sas_rule, self.sas_correct_threshold = sas_settings(section)

    def _compute_advantage(self, batch, metrics: dict):
        # The padding tags of the batch as given: the batch verl's base returns need not carry them.
        tags = getattr(batch, "tags", None) or [{}] * len(batch)
        is_padding = torch.tensor([bool(tag.get("is_padding", False)) for tag in tags], dtype=torch.bool)
        batch = super()._compute_advantage(batch, metrics=metrics)
        tq = trainer_base.tq  # verl's own client handle (a module attribute), read at call time
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=list(FIELDS))
        missing = [name for name in FIELDS if name not in data.keys()]  # noqa: SIM118 - TensorDict refuses `in`
        if missing:
            raise RuntimeError(
                f"{TRAINER_NAME}: verl's batch has no {', '.join(missing)} after _compute_advantage; SAS reads "
                f"{', '.join(FIELDS)} (old_log_probs comes from the actor's log-prob pass, rm_scores from the reward)"
            )
        tokenizer = getattr(self.tokenizer, "tokenizer", self.tokenizer)
        mask = padded(data["response_mask"], 0)
        rule = self.sas_rule
        generator = None
        if rule.draws_random_keys:
            generator = random_generator(self.config.data.get("seed"), getattr(self, "global_steps", 0))
        stop_ids = getattr(self, "sas_stop_ids", None) or stop_token_ids(tokenizer)
        advantages, sas_metrics = sas_advantages(
            padded(data["advantages"], 0.0),
            padded(data["responses"], tokenizer.pad_token_id or 0),  # the mask, not the padding, marks the end
            mask,
            padded(data["old_log_probs"], 0.0),
            padded(data["rm_scores"], 0.0).sum(dim=-1),  # the sequence score verl's GRPO normalises
            tokenizer,
            rule,
            self.sas_correct_threshold,
            generator=generator,
            eos_token_ids=stop_ids,
            is_padding=is_padding,
        )
        metrics.update(sas_metrics)
        if not rule.enabled:
            return batch
        output = TensorDict({"advantages": like(data["advantages"], advantages)}, batch_size=len(batch))
        return tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=output)
