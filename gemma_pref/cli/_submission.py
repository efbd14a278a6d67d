# SPDX-License-Identifier: Apache-2.0
"""Submission planning and writing for ``gemma-pref predict``: the format, the ids
and the row order, checked before any prediction runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..data.schema import WINNER_COLUMNS
from ._common import CLIError


def submission_classes(estimator: Any, proba: Any) -> Any:
    import numpy as np

    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        return np.asarray(classes)
    return np.arange(3 if proba is None else proba.shape[1])


def _submission_format(args: argparse.Namespace, df: Any, classes: Any, sample: Any) -> str:
    """``--submission-format``, or the test file's (or sample submission's) competition."""
    from gemma_pref.data.readers import FORMAT_ATTR

    chosen: str = args.submission_format
    if chosen != "auto":
        return chosen
    if sample is not None:
        if "winner" in sample.columns:
            return "wsdm"
        if set(WINNER_COLUMNS) <= set(sample.columns):
            return "lmsys"
    read = df.attrs.get(FORMAT_ATTR)
    if read in ("lmsys", "wsdm"):
        return str(read)
    return "lmsys" if 2 in set(int(c) for c in classes) else "wsdm"


def plan_submission(args: argparse.Namespace, df: Any, classes: Any) -> dict[str, Any]:
    """The submission's format, ids and row order (of the test file, or of
    ``--sample-submission``), checked before any prediction runs."""
    import numpy as np
    import pandas as pd

    if "id" in df.columns:
        ids = df["id"].tolist()
    elif args.positional_ids:
        ids = list(range(len(df)))
    else:
        raise CLIError(
            "the test rows have no ids (no 'id' column, nor the format's own id column such "
            "as LMArena's question_id): the submission needs one per row; pass "
            "--positional-ids to number the rows 0, 1, 2, ... in file order"
        )
    from ..data.io import check_unique_ids

    try:
        check_unique_ids(ids)  # before the long part, for every submission
    except ValueError as exc:
        raise CLIError(f"the test rows: {exc}") from None
    order = None
    sample = None
    if args.sample_submission is not None:
        sample = pd.read_csv(args.sample_submission)
        if "id" not in sample.columns:
            raise CLIError(f"sample submission {args.sample_submission!r} has no 'id' column")
        try:
            check_unique_ids(sample["id"].tolist())
        except ValueError as exc:
            raise CLIError(f"the sample submission {args.sample_submission!r}: {exc}") from None
        position = {key: i for i, key in enumerate(ids)}
        if len(sample) and isinstance(ids[0], str) != isinstance(sample["id"].iloc[0], str):
            position = {str(k): i for k, i in position.items()}  # "123" and 123 alike
            sample["id"] = sample["id"].astype(str)
        for key in sample["id"].tolist():
            if key not in position:
                raise CLIError(
                    f"id {key!r} of the sample submission {args.sample_submission!r} is "
                    "not in the test rows"
                )
        order = np.asarray([position[key] for key in sample["id"].tolist()], dtype=np.int64)
        ids = [ids[i] for i in order]
    fmt = _submission_format(args, df, classes, sample)
    labels = {int(c) for c in classes}
    if fmt == "lmsys" and 2 not in labels:
        raise CLIError(
            "the pipeline is a two-class model (model_a, model_b; no tie): it cannot write "
            "the LMSYS submission's tie probabilities; use --submission-format wsdm"
        )
    return {"format": fmt, "ids": ids, "order": order}


def write_planned_submission(plan: dict[str, Any], proba: Any, classes: Any, out: Path) -> str:
    """Write the planned submission; return what was written."""
    import numpy as np

    import gemma_pref as gp

    if plan["order"] is not None:
        proba = np.asarray(proba)[plan["order"]]
    gp.write_submission(plan["ids"], proba, out, format=plan["format"], classes=classes)
    columns = ",".join(gp.data.io.SUBMISSION_FORMATS[plan["format"]])
    return f"{out} ({plan['format'].upper()} format: {columns})"
