"""The bridge's configuration: brokers, topics, group, security, namespaces, data locations.

Set through FAIRPILOT_KAFKA_* environment variables (the Helm chart's `kafka:` values become
those); `BridgeConfig.from_env()` reads them, and every field's description says its variable.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from fairpilot import settings
from fairpilot.api.explanation import ExpertiseLevel
from fairpilot.events.topics import Topics

ENV_PREFIX = "FAIRPILOT_KAFKA_"


class PrincipalGrant(BaseModel):
    """Whom one Kafka principal (a producer's SASL user) may act for."""

    # userIds as the chart writes it, user_ids as Python does.
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    user_ids: list[str] = Field(
        min_length=1, description="The user ids its messages may name; '*' for any."
    )
    namespaces: list[str] = Field(
        default_factory=list,
        description="The namespaces its messages may create resources in; empty: the default.",
    )


class BridgeConfig(BaseModel):
    """Everything the Kafka bridge needs; only `bootstrap_servers` has no default."""

    # A refused configuration is printed as the operator exits: without its input, which
    # holds the SASL password.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    bootstrap_servers: str = Field(description="host:port[,host:port] (BOOTSTRAP_SERVERS).")
    group_id: str = Field(default="fairpilot", description="Consumer group (GROUP_ID).")
    client_id: str = Field(default="fairpilot-operator", description="CLIENT_ID.")
    topics: Topics = Field(default_factory=Topics, description="TOPIC_<NAME>, e.g. TOPIC_BIAS.")
    namespace: str = Field(
        default="default", description="Namespace of resources made from messages (NAMESPACE)."
    )
    allowed_namespaces: list[str] = Field(
        default_factory=list,
        description=(
            "Namespaces a message may name in its `namespace` field (ALLOWED_NAMESPACES, "
            "comma-separated); `namespace` is always allowed."
        ),
    )
    data_uri_template: str = Field(
        default="s3://datasets/{user_id}/{dataset_id}.csv",
        description=(
            "Where a dataset is when the message has no `uri` (DATA_URI_TEMPLATE); "
            "{user_id}, {dataset_id} and {namespace} are filled in."
        ),
    )
    principals: dict[str, PrincipalGrant] = Field(
        default_factory=dict,
        description=(
            "Kafka principal -> the user ids and namespaces it may act for (PRINCIPALS, JSON). "
            "A consumer is not told who produced a record, so a principal is known by its "
            "topics: principal P sends on <topic>.P (dataset-events.P, ...), and the cluster's "
            "Kafka ACLs let only P write there. With principals set, a message on a shared "
            "topic is dead-lettered (PrincipalUnknown); without them, user_id is whatever the "
            "producer asserts."
        ),
    )
    start_pipeline: bool = Field(
        default=True,
        description=(
            "A dataset-events message with target_column_name and task_type starts the whole "
            "chain: bias (when it names sensitive_features), training, explanation "
            "(START_PIPELINE)."
        ),
    )
    mitigate_if_biased: bool = Field(
        default=True,
        description=(
            "Such a pipeline, when it has a bias stage, trains with that stage's reweighing "
            "weights if it detects bias (pipeline.training.mitigateIfBiasDetected; "
            "MITIGATE_IF_BIASED)."
        ),
    )
    time_budget_seconds: int = Field(
        default=300, ge=10, description="Training budget when a message gives none."
    )
    levels: list[ExpertiseLevel] = Field(
        default_factory=lambda: list(ExpertiseLevel),
        min_length=1,
        description="Explanation reports when a message names no level (LEVELS).",
    )
    max_message_bytes: int = Field(
        default=256 * 1024, ge=1024, description="Larger messages are dead-lettered."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = Field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    # Kafka's defaults suit Kafka; Tansu (the sandbox's broker) joins a group in about 1 s with
    # 2 s timeouts and 5-18 s with the defaults, so the sandbox lowers them.
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    # acks=all always; idempotence where the broker has it (Kafka does, Tansu does not).
    idempotent_producer: bool = False
    fetch_max_wait_ms: int = Field(
        default=500, ge=10, description="How long a fetch waits for new messages at most."
    )
    batch_size: int = Field(
        default=500,
        ge=1,
        description=(
            "Messages turned into CRs before offsets are committed; a batch must finish "
            "within max_poll_interval_ms or the group rebalances (and re-reads it)."
        ),
    )
    concurrency: int = Field(default=16, ge=1, description="API calls in flight at once.")
    predictions_batch_size: int = Field(
        default=2000,
        ge=1,
        description=(
            "Prediction records (ModelMonitors' spec.kafka topics) read at once "
            "(PREDICTIONS_BATCH_SIZE); they are read by a consumer group of their own, "
            "<GROUP_ID>-predictions."
        ),
    )
    predictions_buffer_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description=(
            "Prediction records held in open windows at most, in bytes "
            "(PREDICTIONS_BUFFER_BYTES); beyond it the oldest window is written early."
        ),
    )

    @model_validator(mode="after")
    def _principal_names(self) -> BridgeConfig:
        for principal in self.principals:
            # The name ends a topic name: Kafka's characters, and room for the longest topic.
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", principal):
                raise ValueError(
                    f"principal {principal[:80]!r}: a topic suffix takes letters, digits, "
                    "'.', '_' and '-' (at most 200)"
                )
        return self

    @model_validator(mode="after")
    def _sasl_complete(self) -> BridgeConfig:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password is not None
        ):
            raise ValueError(
                f"{self.security_protocol} needs SASL_MECHANISM, SASL_USERNAME and SASL_PASSWORD"
            )
        return self

    def namespaces(self) -> set[str]:
        return {self.namespace, *self.allowed_namespaces}

    def routes(self) -> dict[str, str]:
        """Every topic consumed -> its role: the shared inbound topics and, per principal,
        `<topic>.<principal>`."""
        shared = self.topics.inbound()
        routes = dict(shared)
        for principal in self.principals:
            routes |= {f"{topic}.{principal}": role for topic, role in shared.items()}
        return routes

    def principal_of(self, topic: str) -> str | None:
        """The principal whose topic this is, None for a shared topic."""
        for principal in self.principals:
            for shared in self.topics.inbound():
                if topic == f"{shared}.{principal}":
                    return principal
        return None

    def client_options(self) -> dict[str, Any]:
        """Connection options shared by aiokafka's consumer, producer and admin client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL"):
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                "sasl_plain_password": self.sasl_password,
            }
        if self.security_protocol.endswith("SSL"):
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
            )
        return options

    def to_env(self) -> dict[str, str]:
        """The FAIRPILOT_KAFKA_* variables that `from_env` reads back as this configuration."""
        env: dict[str, str] = {}
        for name, value in self.model_dump(exclude={"topics"}, exclude_none=True).items():
            if isinstance(value, dict):
                value = json.dumps(value)
            elif isinstance(value, list):
                value = ",".join(str(item) for item in value)
            elif isinstance(value, bool):
                value = str(value).lower()
            env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
        for name, topic in self.topics.model_dump().items():
            env[f"{ENV_PREFIX}TOPIC_{name.upper()}"] = topic
        return env

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> BridgeConfig | None:
        """The configuration from FAIRPILOT_KAFKA_*; None when no bootstrap servers are set."""
        values = settings.from_env(cls, ENV_PREFIX, env, nested={"topics": "TOPIC_"})
        if "bootstrap_servers" not in values:
            return None
        return cls.model_validate(values)
