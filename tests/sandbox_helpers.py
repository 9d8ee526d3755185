"""Helpers shared by the tests that drive the sandbox: build resources, wait for states."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fairpilot.sandbox.app import Sandbox

# Six rows, a binary label and one sensitive feature: every stage on it takes a second or two.
TINY_CSV = "age,sex,income\n25,F,no\n38,M,yes\n52,M,yes\n41,F,no\n30,F,yes\n45,M,no\n"


def resource(
    kind: str, name: str, spec: dict[str, Any], namespace: str | None = None
) -> dict[str, Any]:
    """A FairPilot resource; without a namespace, `Sandbox.apply` puts it in `default`."""
    return {
        "apiVersion": "fairpilot.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
        "spec": spec,
    }


def by_name(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    return {item["metadata"]["name"]: item for item in sandbox.resources()}


def wait_for(
    sandbox: Sandbox, name: str, check: Callable[[dict[str, Any]], Any], timeout: float = 60
) -> dict[str, Any]:
    """The resource once `check(status)` holds; fails with its last status otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = by_name(sandbox).get(name)
        if item is not None and check(item.get("status") or {}):
            return item
        time.sleep(0.2)
    raise AssertionError(f"{name}: {by_name(sandbox).get(name, {}).get('status')}")


def eventually(condition: Callable[[], Any], timeout: float = 20) -> Any:
    """The first truthy value of `condition()` within `timeout`, else its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)
