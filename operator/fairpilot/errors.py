"""The one exception a stage raises for anything the user can fix."""

from __future__ import annotations

# Reasons that say the world failed, not the input: the stage exits 1 for them (not 2), so that
# the Job's podFailurePolicy, which fails a Job at once on exit code 2, lets a retry try again.
TRANSIENT_REASONS = frozenset({"StorageUnavailable"})


class JobError(Exception):
    """A failure with a machine-readable reason and a message a person can act on.

    `reason` is CamelCase like a Kubernetes condition reason, because the operator copies it
    into the resource's `Failed` condition unchanged.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        """Whether trying again later may succeed (an outage), rather than a fix of the input."""
        return self.reason in TRANSIENT_REASONS

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"
