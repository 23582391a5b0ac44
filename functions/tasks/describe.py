"""Summary statistics of a list of numbers, as numpy computes them."""

from __future__ import annotations

import math
from typing import Annotated

import msgspec

from core.registry import FiniteNumber, Progress, TaskInput, task

QUANTILES = (0.25, 0.5, 0.75)


class DescribeInput(TaskInput):
    values: Annotated[list[FiniteNumber], msgspec.Meta(min_length=1)]


class Description(msgspec.Struct):
    count: int
    mean: float
    # The sample standard deviation (ddof=1); none for a single value, which has no spread to estimate.
    std: float | None
    min: float
    max: float
    quantiles: dict[str, float]


@task("describe")
def describe(inputs: DescribeInput, progress: Progress) -> Description:
    """Count, mean, sample standard deviation, min, max and quartiles (numpy's linear method) of `values`."""
    import numpy as np  # here, not at the top: the API's functions load this module and must not load numpy

    try:
        values = np.array(inputs.values, dtype=np.float64)
    except OverflowError as error:
        raise ValueError("values: an integer is beyond the range of a 64-bit float") from error
    progress(0.25)
    # A sum or a spread beyond a float's range is inf here, and reported below rather than warned about.
    with np.errstate(over="ignore", invalid="ignore"):
        mean = float(values.mean())
        std = float(values.std(ddof=1)) if values.size > 1 else None
        progress(0.5)
        quartiles = np.quantile(values, QUANTILES, method="linear")
    description = Description(
        count=int(values.size),
        mean=mean,
        std=std,
        min=float(values.min()),
        max=float(values.max()),
        quantiles={str(q): float(value) for q, value in zip(QUANTILES, quartiles, strict=True)},
    )
    figures = {"mean": mean, "std": std, **{f"{q} quantile": value for q, value in description.quantiles.items()}}
    for name, value in figures.items():
        if value is not None and not math.isfinite(value):
            raise ValueError(f"the {name} of these values is beyond the range of a 64-bit float: scale them down")
    progress(1.0)
    return description
