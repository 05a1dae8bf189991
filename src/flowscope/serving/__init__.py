"""The prediction service and its inference monitor (``flowscope serve``/``predict``)."""

from flowscope.serving.app import create_serving_app
from flowscope.serving.drift import feature_drift, psi
from flowscope.serving.history import inference_history
from flowscope.serving.inference_run import log_predictions
from flowscope.serving.model import ModelRef, ServedModel, load_served_model
from flowscope.serving.monitor import InferenceMonitor
from flowscope.serving.predict import PredictionResult, predict_file, predict_record
from flowscope.serving.server import run_server

__all__ = [
    "InferenceMonitor",
    "ModelRef",
    "PredictionResult",
    "ServedModel",
    "create_serving_app",
    "feature_drift",
    "inference_history",
    "load_served_model",
    "log_predictions",
    "predict_file",
    "predict_record",
    "psi",
    "run_server",
]
