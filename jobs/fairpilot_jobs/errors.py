"""The one exception a stage raises for anything the user can fix."""

from __future__ import annotations


class JobError(Exception):
    """A failure with a machine-readable reason and a message a person can act on.

    `reason` is CamelCase like a Kubernetes condition reason, because the operator copies it
    into the resource's `Failed` condition unchanged.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"
