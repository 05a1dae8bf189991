"""Explanations of models (exact SHAP values by model type) and fairness by group.

Importing this package is light; shap, numba and fairlearn are imported when used (the
``explain`` extra installs them).
"""

from flowscope.explain.explanation import Explanation
from flowscope.explain.fairness import FairnessReport, fairness_report, log_fairness
from flowscope.explain.records import SKIPPED_TAG, log_explanation, log_explanations
from flowscope.explain.shap_values import UnsupportedModelError, explain_model

__all__ = [
    "SKIPPED_TAG",
    "Explanation",
    "FairnessReport",
    "UnsupportedModelError",
    "explain_model",
    "fairness_report",
    "log_explanation",
    "log_explanations",
    "log_fairness",
]
