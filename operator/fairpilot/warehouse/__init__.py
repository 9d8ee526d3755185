"""The warehouse: an optional MongoDB registry of datasets, reports, models and events."""

from fairpilot.warehouse.store import Warehouse

__all__ = ["Warehouse"]
