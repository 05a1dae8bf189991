"""Data sets the workbench tests upload."""

from __future__ import annotations

import numpy as np
import pandas as pd


def customers(rows: int = 60) -> pd.DataFrame:
    """String categories, missing values in several columns, a constant column and two
    duplicated rows."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "city": rng.choice(["Lyon", "Oslo", "Kraków", "Porto"], rows),
            "plan": rng.choice(["basic", "plus", None], rows),
            "region": ["EU"] * rows,
            "age": rng.integers(18, 80, rows).astype(float),
            "spend": rng.normal(50, 20, rows).round(2),
            "churned": rng.choice(["yes", "no"], rows),
        }
    )
    frame.loc[rng.choice(rows, 7, replace=False), "age"] = np.nan
    frame.loc[rng.choice(rows, 3, replace=False), "spend"] = np.nan
    return pd.concat([frame, frame.iloc[:2]], ignore_index=True)
