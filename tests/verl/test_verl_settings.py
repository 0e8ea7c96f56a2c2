"""sas_trl.integrations.verl: `trainer.v1.sas_sync` given as something other than a mapping (a list, a text, a
number: `+trainer.v1.sas_sync=0.3` with `.ratio` forgotten) is one `UserError` naming the setting, as verl's
Hydra config hands it over and as a plain value. Runs in the verl environment (see test_integrations_verl.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import verl
from verl.trainer.ppo.v1 import get_trainer_cls

from sas_trl.core import SASRule
from sas_trl.errors import UserError
from sas_trl.integrations import verl as plugin

SAS_CONFIG = ("algorithm.adv_estimator=grpo", "actor_rollout_ref.rollout.n=4", "trainer.v1.trainer_mode=sas_sync")


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return hydra_compose("ppo_trainer", overrides=list(overrides))


@pytest.mark.parametrize(
    ("section", "named"),
    [
        (0.3, "got float 0.3; did you mean +trainer.v1.sas_sync.ratio=0.3?"),
        (1, "got int 1; did you mean +trainer.v1.sas_sync.ratio=1?"),
        ("0.3", "got str '0.3'"),
        ("ratio=0.3", "got str 'ratio=0.3'"),
        ("", "got str ''"),
        ([0.3], "got list [0.3]"),
        ([["ratio", 0.3]], "got list [['ratio', 0.3]]"),  # dict() would have read it as {"ratio": 0.3}
        ((), "got tuple ()"),
        (True, "got bool True"),
    ],
)
def test_a_section_that_is_not_a_mapping_names_the_setting(section, named):
    with pytest.raises(UserError) as caught:
        plugin.sas_settings(section)
    message = str(caught.value)
    assert message.startswith("trainer.v1.sas_sync must be a mapping of SAS settings") and named in message
    assert "ratio, strategy" in message  # the keys it takes


def test_keys_of_any_type_are_named_not_sorted_into_a_type_error():
    with pytest.raises(UserError, match=r"trainer.v1.sas_sync.1 is not a SAS setting"):
        plugin.sas_settings({1: 0.3, "x": 2})


def test_an_absent_or_empty_section_keeps_the_defaults():
    assert plugin.sas_settings(None) == (SASRule(), 1.0)
    assert plugin.sas_settings({}) == (SASRule(), 1.0)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("+trainer.v1.sas_sync=0.3", "did you mean +trainer.v1.sas_sync.ratio=0.3?"),
        ("+trainer.v1.sas_sync=[0.3,0.5]", "trainer.v1.sas_sync must be a mapping"),
        ("+trainer.v1.sas_sync=correct_only", "got str 'correct_only'"),
    ],
)
def test_selecting_the_trainer_with_a_section_that_is_not_a_mapping_names_it(override, named):
    config = compose(*SAS_CONFIG, override)
    with pytest.raises(UserError) as caught:
        get_trainer_cls(config.trainer.v1.trainer_mode)(config=config)
    assert str(caught.value).startswith("trainer.v1.sas_sync") and named in str(caught.value)
