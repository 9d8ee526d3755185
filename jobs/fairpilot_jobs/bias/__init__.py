"""The bias stage: fairness metrics per sensitive feature and group, and reweighing."""
