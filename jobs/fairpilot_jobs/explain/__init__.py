"""The explain stage: SHAP values for a model stored by the train stage."""
