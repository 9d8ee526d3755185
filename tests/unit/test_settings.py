"""The one reader of environment variables behind the operator's, the bridge's and the
warehouse's `from_env`."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from fairpilot.bridge.config import BridgeConfig
from fairpilot.controller.main import config_from_env
from fairpilot.settings import from_env


class Inner(BaseModel):
    colour: str = "red"


class Sample(BaseModel):
    name: str | None = None
    count: int = 0
    tags: list[str] = []
    extra: dict[str, int] | None = None
    inner: Inner = Inner()


def test_each_kind_of_value_is_spelt_one_way() -> None:
    env = {
        "P_NAME": "x",
        "P_COUNT": "3",
        "P_TAGS": " a, b ,,c",
        "P_EXTRA": '{"k": 1}',
        "P_IN_COLOUR": "blue",
        "P_UNKNOWN": "ignored",
        "ELSEWHERE": "y",
    }
    values = from_env(Sample, "P_", env, nested={"inner": "IN_"}, renamed={"ELSEWHERE": "name"})
    sample = Sample.model_validate(values)
    assert sample == Sample(name="y", count=3, tags=["a", "b", "c"], extra={"k": 1},
                            inner=Inner(colour="blue"))  # fmt: skip
    assert from_env(Sample, "P_", {"P_NAME": "", "P_TAGS": ""}) == {}, "empty is unset"
    with pytest.raises(ValueError, match="P_EXTRA is not JSON"):
        from_env(Sample, "P_", {"P_EXTRA": "{nope"})


def test_the_bridge_configuration_survives_its_own_environment() -> None:
    config = BridgeConfig(
        bootstrap_servers="k:9092",
        allowed_namespaces=["a", "b"],
        principals={"billing": {"userIds": ["alice"], "namespaces": ["a"]}},
        topics={"dead_letter": "dlq"},
    )
    assert BridgeConfig.from_env(config.to_env()) == config
    assert BridgeConfig.from_env({}) is None


def test_the_operator_takes_variables_over_its_file() -> None:
    env = {"FAIRPILOT_JOBS_IMAGE": "img:2", "FAIRPILOT_ALLOW_GPU": "false"}
    config = config_from_env(env)
    assert config.jobs_image == "img:2" and config.gpu.allowed is False
    assert config_from_env({"FAIRPILOT_ALLOW_GPU": "true"}).gpu.allowed is True
