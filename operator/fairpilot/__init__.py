"""FairPilot: a Kubernetes operator for bias-aware AutoML pipelines with explanations."""

__version__ = "0.1.0"

API_GROUP = "fairpilot.io"
API_VERSION = "v1alpha1"
