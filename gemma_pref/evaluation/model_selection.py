# SPDX-License-Identifier: Apache-2.0
"""Cross-validation for arena rows: folds grouped by prompt.

The same prompt is often asked to several pairs of models. When its rows fall
into both the training and the test fold, a model can score by recognising the
prompt rather than by judging the answers, and cross-validation flatters it.
:func:`prompt_groups` gives every row the id of its normalised prompt and
:class:`PromptGroupKFold` keeps each prompt within one fold. This module never
imports torch.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from ..data.schema import ARENA_COLUMNS, CELL_FORMATS, check_arena_frame, read_turns

__all__ = ["PromptGroupKFold", "normalize_prompt", "prompt_groups"]

_SPACE = re.compile(r"\s+")


def normalize_prompt(turns: list[str]) -> str:
    """The key under which two prompts count as the same.

    Turns are joined with a newline, case is folded and every run of
    whitespace becomes one space, trimmed at both ends.

    Parameters
    ----------
    turns : list of str
        The prompt's turns, as :func:`~gemma_pref.text.formatting.parse_turns`
        returns them.

    Returns
    -------
    key : str
        Lower-cased, whitespace-normalised text of all turns.

    Examples
    --------
    >>> from gemma_pref.evaluation.model_selection import normalize_prompt
    >>> normalize_prompt(["  What is\\n2+2? "]) == normalize_prompt(["what is 2+2?"])
    True
    """
    return _SPACE.sub(" ", "\n".join(turns).casefold()).strip()


def prompt_groups(X: Any, *, cell_format: str = "auto") -> np.ndarray:
    """Group id of each arena row: rows with the same normalised prompt share one.

    Parameters
    ----------
    X : pandas.DataFrame or mapping
        Arena rows with a ``prompt`` column (JSON lists of turns or plain
        strings, read like :class:`~gemma_pref.ArenaTextFormatter` reads them;
        a missing cell is the empty prompt). Other columns, such as the WSDM
        Cup's ``language``, are ignored: to group by them, pass their codes as
        ``groups`` to :meth:`PromptGroupKFold.split`.
    cell_format : {"auto", "json", "text"}, default="auto"
        How the text cells are read, one rule for the frame (the prompt and,
        where present, both answers decide ``"auto"``), as
        :class:`~gemma_pref.ArenaTextFormatter`'s parameter of that name.

    Returns
    -------
    groups : ndarray of shape (n_rows,), dtype=int64
        0, 1, 2, ... in order of first appearance; prompts are compared after
        :func:`normalize_prompt` (all turns, case and whitespace ignored).

    See Also
    --------
    PromptGroupKFold : Stratified k-fold over these groups.

    Examples
    --------
    >>> import pandas as pd
    >>> from gemma_pref.evaluation.model_selection import prompt_groups
    >>> df = pd.DataFrame({"prompt": ['["Hi"]', '["Why?"]', '[" hi "]']})
    >>> prompt_groups(df)
    array([0, 1, 0])

    With scikit-learn's own splitter, pass them as ``groups``:
    ``cross_val_score(pipe, df, y, cv=StratifiedGroupKFold(5),
    groups=prompt_groups(df))``.
    """
    X = check_arena_frame(X, "prompt_groups", required=("prompt",))
    columns = ARENA_COLUMNS if set(ARENA_COLUMNS) <= set(X.columns) else ("prompt",)
    _, turns = read_turns(X, "prompt_groups", cell_format, columns)
    keys = [normalize_prompt(t) for t in turns["prompt"]]
    codes, _ = pd.factorize(pd.Series(keys, dtype=object))
    return codes.astype(np.int64)


class PromptGroupKFold(StratifiedGroupKFold):
    """Stratified k-fold in which the same prompt never sits in train and test.

    scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold`
    (folds keep the class proportions as far as the groups allow), with the
    groups computed from the arena DataFrame by :func:`prompt_groups` when
    none are given. So it works directly as ``cv=`` in ``cross_val_score``,
    ``cross_validate`` or ``GridSearchCV``, with no ``groups=`` argument.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2.
    shuffle : bool, default=False
        Shuffle the groups before splitting (see ``StratifiedGroupKFold``).
    random_state : int, RandomState instance or None, default=None
        Seed of the shuffle; only used when ``shuffle=True``.
    cell_format : {"auto", "json", "text"}, default="auto"
        How :func:`prompt_groups` reads the prompts.

    See Also
    --------
    prompt_groups : The group ids.
    sklearn.model_selection.StratifiedGroupKFold : The splitter underneath.

    Notes
    -----
    ``groups`` passed to :meth:`split` (or through ``cross_val_score(...,
    groups=...)``) take precedence over the prompt groups. ``y`` is required:
    the folds are stratified on it.

    Examples
    --------
    >>> from gemma_pref import load_arena_sample
    >>> from gemma_pref.data import labels_from_winner
    >>> from gemma_pref.evaluation.model_selection import PromptGroupKFold, prompt_groups
    >>> df = load_arena_sample()
    >>> y = labels_from_winner(df)
    >>> groups = prompt_groups(df)
    >>> cv = PromptGroupKFold(n_splits=5)
    >>> all(set(groups[train]).isdisjoint(groups[test])
    ...     for train, test in cv.split(df, y))
    True
    """

    def __init__(
        self,
        n_splits: int = 5,
        *,
        shuffle: bool = False,
        random_state: Any = None,
        cell_format: str = "auto",
    ) -> None:
        super().__init__(n_splits=n_splits, shuffle=shuffle, random_state=random_state)
        self.cell_format = cell_format

    def split(self, X: Any, y: Any = None, groups: Any = None):
        """Generate indices to split arena rows into training and test set.

        Parameters
        ----------
        X : pandas.DataFrame
            Arena rows with a ``prompt`` column (when ``groups`` is None).
        y : array-like of shape (n_rows,)
            Labels to stratify on.
        groups : array-like of shape (n_rows,) or None, default=None
            Group labels; ``None`` uses :func:`prompt_groups` of ``X``.

        Yields
        ------
        train : ndarray
            The training set indices for that split.
        test : ndarray
            The testing set indices for that split.
        """
        if groups is None:
            if self.cell_format not in CELL_FORMATS:
                raise ValueError(
                    f"The 'cell_format' parameter of PromptGroupKFold must be one of "
                    f"{', '.join(map(repr, CELL_FORMATS))}; got {self.cell_format!r}."
                )
            groups = prompt_groups(X, cell_format=self.cell_format)
        if y is None:
            raise ValueError(
                "PromptGroupKFold stratifies on the labels: pass y (0: model_a "
                "wins, 1: model_b wins, 2: tie) to split(X, y)."
            )
        return super().split(X, y, groups)
