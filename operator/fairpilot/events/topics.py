"""The Kafka topics FairPilot reads and writes: the seed's names by default (seed 001).

Below the bridge because the warehouse records each event under its topic too.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Topics(BaseModel):
    """Topic names; the defaults are the seed's (seed 001) plus FairPilot's three."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = "dataset-events"
    bias_trigger: str = "bias-trigger-events"
    automl_trigger: str = "automl-trigger-events"
    xai_trigger: str = "xai-trigger-events"
    bias: str = "bias-events"
    automl: str = "automl-events"
    xai: str = "xai-events"
    drift: str = Field(
        default="drift-events", description="A ModelMonitor's alerts: one drift.detected each."
    )
    status: str = Field(default="fairpilot-status-events", description="Every phase change.")
    dead_letter: str = Field(
        default="fairpilot-dead-letter", description="Messages that could not become a resource."
    )

    def inbound(self) -> dict[str, str]:
        """topic name -> role (the keys of payloads.INBOUND_BY_ROLE)."""
        return {
            self.dataset: "dataset",
            self.bias_trigger: "bias_trigger",
            self.automl_trigger: "automl_trigger",
            self.xai_trigger: "xai_trigger",
        }
