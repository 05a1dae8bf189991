"""Explanations of models (SHAP values) and fairness by group."""
