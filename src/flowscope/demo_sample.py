"""A file for the demo's workbench: customers with text categories, missing values and a
yes/no target, to upload at ``/workbench`` (made here, nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_NAME = "customers.csv"


def write_workbench_sample(folder: Path, rows: int = 1000, seed: int = 0) -> str:
    """Write ``customers.csv`` into ``folder`` (once) and return the demo's summary line."""
    import numpy as np
    import pandas as pd

    path = folder / SAMPLE_NAME
    if not path.exists():
        rng = np.random.default_rng(seed)
        frame = pd.DataFrame(
            {
                "tenure_months": rng.integers(1, 72, rows).astype(float),
                "monthly_spend": rng.normal(60, 25, rows).clip(5).round(2),
                "plan": rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2]),
                "region": rng.choice(["north", "south", "east", "west"], rows),
                "support_calls": rng.poisson(1.5, rows).astype(float),
            }
        )
        risk = (
            -0.04 * frame["tenure_months"]
            + 0.6 * frame["support_calls"]
            + (frame["plan"] == "basic") * 0.8
            + rng.normal(0, 1, rows)
        )
        frame["churned"] = np.where(risk > 0.2, "yes", "no")
        frame.loc[rng.choice(rows, rows // 20, replace=False), "tenure_months"] = np.nan
        frame.loc[rng.choice(rows, rows // 25, replace=False), "plan"] = None
        frame.to_csv(path, index=False)
    return (
        f"workbench: upload {path.name} at /workbench (target: churned), train, register "
        "and predict in the browser"
    )
