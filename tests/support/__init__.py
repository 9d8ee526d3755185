"""What several test modules share, for the three tiers (unit, integration, packaging).

The sandbox's own test kit is `fairpilot.sandbox.testing`, usable outside this repository; this
package holds what only these tests need: the seed's payloads, stage runs, the chart's renderer,
report parsing, the bridge without a broker. pytest puts `tests/` and `scripts/` on the path
(`pythonpath` in pyproject.toml), so modules import it as `support.<module>`.
"""
