"""Every label and annotation key FairPilot writes or reads, in one place.

They are part of the contract as much as the models are: `kubectl get -l`, the chart's
selectors, the Kafka bridge's idempotence and the warehouse's audit all depend on them, so a key
spelt twice is a key that can drift.
"""

from __future__ import annotations

from fairpilot import API_GROUP

# On the custom resources a Kafka message made (bridge.inbound), and inherited by a pipeline's
# children (pipeline.py).
USER_ID = f"{API_GROUP}/user-id"
DATASET_ID = f"{API_GROUP}/dataset-id"
MODEL_ID = f"{API_GROUP}/model-id"
EVENT_ID = f"{API_GROUP}/event-id"
SOURCE = f"{API_GROUP}/source"  # topic/partition/offset of the message that made it
PIPELINE = f"{API_GROUP}/pipeline"  # on the resources a Dataset's pipeline made

# On the stage Jobs (jobs.py); the operator watches Jobs by MANAGED_BY.
MANAGED_BY = "app.kubernetes.io/managed-by"
OPERATOR = "fairpilot-operator"  # the value of MANAGED_BY on every Job the operator makes
NAME = "app.kubernetes.io/name"
COMPONENT = "app.kubernetes.io/component"
INSTANCE = "app.kubernetes.io/instance"
VERSION = "app.kubernetes.io/version"
PART_OF = "app.kubernetes.io/part-of"
KIND = f"{API_GROUP}/kind"
RESOURCE_NAME = f"{API_GROUP}/name"
GENERATION = f"{API_GROUP}/generation"
RUN = f"{API_GROUP}/run"
STAGE = f"{API_GROUP}/stage"

# Kopf's own records on the custom resources (handlers.configure).
FINALIZER = f"{API_GROUP}/finalizer"
RECORDS = API_GROUP  # the prefix of its progress and diff-base annotations
