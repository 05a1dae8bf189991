"""Model registry: versions, lifecycle and promotion."""

from flowscope.registry.history import decision_history
from flowscope.registry.lock import LockBusyError, RegistryLock
from flowscope.registry.policy import Policy, PolicyError, load_policy, parse_policy
from flowscope.registry.promotion import PromotionResult, preview_promotion, promote
from flowscope.registry.retrain import RetrainResult, retrain

__all__ = [
    "LockBusyError",
    "Policy",
    "PolicyError",
    "PromotionResult",
    "RegistryLock",
    "RetrainResult",
    "decision_history",
    "load_policy",
    "parse_policy",
    "preview_promotion",
    "promote",
    "retrain",
]
