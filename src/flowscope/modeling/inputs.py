"""What a trained model takes: its input columns, the signature that declares them, and
the pipeline's first step, which turns a raw frame into what the rest of the pipeline takes.

A model must answer the table it was trained from, read the same way (``pd.read_csv`` of
the same file), through plain MLflow as through flowscope. MLflow's pyfunc checks a frame
against the signature before the model sees it, and refuses an ``int64`` column declared
``double`` ("Can not safely convert int64 to float64"); so the signature declares each column
as the training frame holds it (integers as ``long``), and :class:`RawFrameCaster` casts
inside the pipeline (integers to floats, every missing-value marker to NaN), where MLflow's
checks and the model then agree.

A column is optional (``required=False``) when it had a missing value in the data trained
on. The other columns stay required, numeric ones too: MLflow's ``required`` is about the
column being present at all, not about its cells (a ``double`` or ``string`` column takes
missing cells either way, and the pipeline imputes them), and a required column turns a
misspelt or dropped column into an error instead of every row silently getting the
training median. An integer column cannot take a missing cell in MLflow whatever it is
declared (``pd.read_csv`` then reads it as ``float64``, which a ``long`` column refuses and
a ``double`` column is no better: it refuses ``int64``); a column that had gaps in training
was read as ``float64`` and is declared ``double``, which takes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from flowscope.errors import FlowscopeError

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import Schema


def split_columns(features: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Numeric and categorical feature columns; any other type is refused by name."""
    import pandas as pd

    numeric: list[str] = []
    categorical: list[str] = []
    for column in features.columns:
        dtype = features[column].dtype
        if pd.api.types.is_bool_dtype(dtype):
            categorical.append(str(column))
        elif pd.api.types.is_numeric_dtype(dtype):
            numeric.append(str(column))
        elif (
            pd.api.types.is_object_dtype(dtype)
            or isinstance(dtype, pd.CategoricalDtype)
            or pd.api.types.is_string_dtype(dtype)
        ):
            categorical.append(str(column))
        else:
            raise FlowscopeError(
                f"column {column!r} has type {dtype}, which flowscope cannot use as a feature; "
                "convert it to numbers or text, or drop it"
            )
    return numeric, categorical


def optional_columns(features: pd.DataFrame) -> list[str]:
    """The columns with a missing value somewhere: the ones a request may leave out."""
    missing = features.isna().any()
    return [str(column) for column, gap in missing.items() if gap]


class RawFrameCaster(TransformerMixin, BaseEstimator):
    """The pipeline's first step: the columns it was fitted on, in that order, numeric ones
    as float64 and categorical ones with NaN for every missing-value marker (None, pd.NA).

    It takes the frame a user has (integer columns, None in text columns from JSON,
    optional columns left out, which MLflow drops before the model sees the frame) and
    gives the rest of the pipeline the same kind of frame whatever the source, so that
    ``pd.read_csv``, MLflow's serving and flowscope's serving all get the same answers.
    A left-out ``optional`` column is all missing; a left-out other column is an error;
    columns it was not fitted on are ignored, as MLflow ignores them.
    """

    def __init__(
        self,
        numeric: list[str] | None = None,
        categorical: list[str] | None = None,
        optional: list[str] | None = None,
    ) -> None:
        self.numeric = numeric
        self.categorical = categorical
        self.optional = optional

    def fit(self, X: Any, y: Any = None) -> RawFrameCaster:
        import pandas as pd

        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"{type(self).__name__} is fitted on a DataFrame, not {type(X)}")
        names = [str(column) for column in X.columns]
        declared = list(self.numeric or []) + list(self.categorical or [])
        if sorted(declared) != sorted(names):
            raise ValueError(
                f"numeric and categorical columns {declared} are not the frame's {names}"
            )
        self.feature_names_in_ = np.asarray(names, dtype=object)
        self.n_features_in_ = len(names)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        import pandas as pd

        names = [str(name) for name in self.feature_names_in_]
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=names)
        given = {str(column) for column in frame.columns}
        optional = set(self.optional or [])
        absent = [name for name in names if name not in given and name not in optional]
        if absent:
            raise ValueError(f"the input has no column {', '.join(map(repr, absent))}")
        numeric = set(self.numeric or [])
        columns: dict[str, np.ndarray] = {}
        for name in names:
            if name not in given:
                dtype = np.float64 if name in numeric else object
                columns[name] = np.full(len(frame), np.nan, dtype=dtype)
            elif name in numeric:
                columns[name] = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                values = frame[name].to_numpy(dtype=object, copy=True)
                values[pd.isna(values)] = np.nan
                columns[name] = values
        return pd.DataFrame(columns, index=frame.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_in_, dtype=object)


def input_schema(features: pd.DataFrame) -> Schema:
    """The signature's inputs for ``features`` as the user holds them: integer columns
    ``long``, other numbers ``double``, booleans ``boolean``, anything else ``string``;
    optional where :func:`optional_columns` says so."""
    from mlflow.types import ColSpec, DataType, Schema, TensorSpec

    numeric, _ = split_columns(features)
    optional = set(optional_columns(features))
    specs: list[ColSpec | TensorSpec] = []
    for column in features.columns:
        name = str(column)
        kind = features[column].dtype.kind
        if name in numeric:
            dtype = DataType.long if kind in "iu" else DataType.double
        elif kind == "b":
            dtype = DataType.boolean
        else:
            dtype = DataType.string
        specs.append(ColSpec(dtype, name, required=name not in optional))
    return Schema(specs)


def model_signature(features: pd.DataFrame, predictions: Any) -> ModelSignature:
    """The signature a trained model is logged with: :func:`input_schema` of the training
    features, and the outputs MLflow infers from ``predictions``."""
    from mlflow.models import ModelSignature, infer_signature

    outputs = infer_signature(model_output=predictions).outputs
    return ModelSignature(inputs=input_schema(features), outputs=outputs)
