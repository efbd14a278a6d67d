# SPDX-License-Identifier: Apache-2.0
"""The bundled arena sample: 715 real rows of the Kaggle LMSYS training set."""

from __future__ import annotations

from importlib.resources import as_file, files

import pandas as pd

from .io import read_csv_text
from .readers import FORMAT_ATTR
from .schema import CELLS_ATTR

__all__ = ["load_arena_sample", "SAMPLE_PATH_NAME"]

SAMPLE_PATH_NAME = "arena_sample.csv"


def load_arena_sample() -> pd.DataFrame:
    """Load the bundled sample of the "LMSYS - Chatbot Arena" training set.

    715 real rows of the Kaggle competition's ``train.csv`` (columns ``id``,
    ``model_a``, ``model_b``, ``prompt``, ``response_a``, ``response_b``,
    ``winner_model_a``, ``winner_model_b``, ``winner_tie``). Three rows have a
    ``null`` response item, and 96 rows have more than one turn.

    Returns
    -------
    df : pandas.DataFrame
        The rows, in file order, marked as the Kaggle LMSYS format
        (``df.attrs``: format ``"lmsys"``, text cells ``"json"``), as
        :func:`~gemma_pref.read_preferences` marks what it reads.

    Examples
    --------
    >>> from gemma_pref.data.sample import load_arena_sample
    >>> df = load_arena_sample()
    >>> df.shape
    (715, 9)
    """
    with as_file(files("gemma_pref") / "data" / SAMPLE_PATH_NAME) as path:
        df = read_csv_text(path)
    # the Kaggle LMSYS format: every text cell a JSON list of turns
    df.attrs[FORMAT_ATTR] = "lmsys"
    df.attrs[CELLS_ATTR] = "json"
    return df
