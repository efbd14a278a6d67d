"""scikit-learn's estimator checks: every estimator gets the ones that apply.

``PairDifferenceClassifier`` takes numbers and gets the whole battery through
``parametrize_with_checks``, less the checks listed with their reason. The
other estimators take arena rows or texts: scikit-learn's tags say so, and its
generator then gives them no check at all. Here each of them gets every check
that scikit-learn gives an estimator of its kind taking numbers: the ones that
apply run and must pass; the ones that cannot apply are listed below with the
reason, and run to show that reason holds (the check must fail on the
estimator refusing scikit-learn's data with its own message). A check that
scikit-learn adds later is in neither list, and the completeness test says so.

Not given the checks: ``AutoDeviceCatBoostClassifier`` (the seed recipe's
classifier) is CatBoost's ``CatBoostClassifier`` with a device choice, not a
scikit-learn ``BaseEstimator``; ``PromptGroupedPipeline`` is scikit-learn's
``Pipeline`` with prompt groups routed to the search (tests/test_pipeline.py),
and scikit-learn does not run these checks on ``Pipeline`` either.
"""

from __future__ import annotations

import re
from functools import partial

import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import estimator_checks_generator, parametrize_with_checks

from gemma_pref import (
    ArenaTextFormatter,
    GemmaEmbedder,
    GemmaPreferenceClassifier,
    PairDifferenceClassifier,
    PreferenceBlendClassifier,
)
from gemma_pref.models.augmentation import SwapABClassifier
from gemma_pref.text.features import ArenaStructureFeatures

#: The tiny checkpoint is a session fixture: the estimators name this path and
#: each test puts the fixture's path in its place.
TINY = "tiny-gemma"
TEXT_ESTIMATORS = [
    ArenaTextFormatter(),
    GemmaEmbedder(TINY, max_length=32, dtype="float32", backend="torch"),
    ArenaStructureFeatures(),
    SwapABClassifier(LogisticRegression()),
    GemmaPreferenceClassifier(TINY, max_length=32, dtype="float32", num_epochs=1),
    PreferenceBlendClassifier(GemmaEmbedder(TINY, max_length=32, dtype="float32")),
]
ESTIMATORS = [*TEXT_ESTIMATORS, PairDifferenceClassifier()]


def _on_tiny(estimator, tiny_gemma):
    """A clone of ``estimator`` with the tiny checkpoint where it names ``TINY``."""
    params = {k: tiny_gemma for k, v in estimator.get_params().items() if v == TINY}
    return clone(estimator).set_params(**params)


def _check_name(check) -> str:
    return check.func.__name__ if isinstance(check, partial) else check.__name__


def _check_id(check) -> str:
    kwargs = check.keywords if isinstance(check, partial) else {}
    args = ",".join(f"{k}={v}" for k, v in kwargs.items())
    return f"{_check_name(check)}({args})" if args else _check_name(check)


def _as_if_numbers(estimator):
    """``estimator`` with the tags of one that takes a 2-D array of numbers."""
    cls = type(estimator)

    def tags(self):
        t = super(twin, self).__sklearn_tags__()
        t.input_tags.two_d_array = True
        t.input_tags.string = False
        return t

    twin = type(cls.__name__, (cls,), {"__sklearn_tags__": tags, "__module__": cls.__module__})
    return twin(**estimator.get_params(deep=False))


def _checks_for_its_kind(estimator):
    """The checks scikit-learn gives an estimator of this kind taking numbers."""
    twin = _as_if_numbers(estimator)
    return [check for _, check in estimator_checks_generator(twin, legacy=True, mark=None)]


#: Why a check cannot apply to an estimator of arena rows or texts. The
#: scikit-learn checks feed 2-D arrays of numbers (dense, sparse, read-only,
#: complex, with NaN, of one column or one row...), and these estimators refuse
#: anything but their input with an error that says what they expected.
_NUMBERS = (
    "scikit-learn's data are arrays of numbers; {input} is the input here, and "
    "anything else is refused with the error that says so"
)
_ROWS = _NUMBERS.format(input="arena rows (a DataFrame with prompt and answers)")
_TEXTS = _NUMBERS.format(input="a sequence of texts")
_ARRAY_API = "runs only with SCIPY_ARRAY_API=1, on array-API arrays of numbers"
_NO_ROWS = (
    "fit only checks the parameters and the texts it is given: no texts is valid, "
    "and transform then gives an array of 0 rows (an empty block of a Ray job)"
)
#: What an estimator says when given numbers (the proof that the reason holds).
REFUSAL = re.compile(
    r"A pandas DataFrame with columns .* expected, got"
    r"|text\d? at row \d+: expected str, got"
    r"|Iterable over raw text documents expected"
    r"|expects texts; got an input with 0 columns"
)

#: Checks that run on numbers whatever the estimator (all but the API checks).
_DATA_CHECKS = [
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_positive_only_tag_during_fit",
    "check_estimators_dtypes",
    "check_complex_data",
    "check_dtype_object",
    "check_estimators_empty_data_messages",
    "check_pipeline_consistency",
    "check_estimators_nan_inf",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
]
_TRANSFORMER_CHECKS = [
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformers_unfitted_stateless",
]
_CLASSIFIER_CHECKS = [
    "check_classifier_data_not_an_array",
    "check_classifiers_one_label",
    "check_classifiers_classes",
    "check_classifiers_train",
    "check_classifiers_regression_target",
    "check_supervised_y_2d",
    "check_requires_y_none",
]


def _cannot_apply(data, *kinds):
    names = [*_DATA_CHECKS, *(name for kind in kinds for name in kind)]
    return {**dict.fromkeys(names, data), "check_array_api_input": _ARRAY_API}


#: Per estimator: the checks that cannot apply, with the reason. Every other
#: check scikit-learn gives its kind runs and passes.
CANNOT_APPLY = {
    "ArenaTextFormatter": {
        **_cannot_apply(_ROWS, _TRANSFORMER_CHECKS),
        "check_estimator_sparse_tag": _ROWS,
    },
    "ArenaStructureFeatures": {
        **_cannot_apply(_ROWS, _TRANSFORMER_CHECKS),
        "check_estimator_sparse_tag": _ROWS,
        "check_transformer_preserve_dtypes": _ROWS,
    },
    "GemmaEmbedder": {
        **_cannot_apply(_TEXTS, _TRANSFORMER_CHECKS),
        "check_transformer_preserve_dtypes": _TEXTS,
        "check_estimators_empty_data_messages": _NO_ROWS,
    },
    "SwapABClassifier": {
        **_cannot_apply(_ROWS, _CLASSIFIER_CHECKS),
        "check_estimator_sparse_tag": _ROWS,
    },
    "GemmaPreferenceClassifier": {
        **_cannot_apply(_TEXTS, _CLASSIFIER_CHECKS),
        "check_decision_proba_consistency": _TEXTS,
    },
    "PreferenceBlendClassifier": {
        **_cannot_apply(_ROWS, _CLASSIFIER_CHECKS),
        "check_estimator_sparse_tag": _ROWS,
    },
}

_TEXT_CASES = [
    (estimator, check) for estimator in TEXT_ESTIMATORS for check in _checks_for_its_kind(estimator)
]


@pytest.mark.parametrize(
    "estimator, check",
    [
        pytest.param(e, c, id=f"{type(e).__name__}-{_check_id(c)}")
        for e, c in _TEXT_CASES
        if _check_name(c) not in CANNOT_APPLY[type(e).__name__]
    ],
)
def test_checks_that_apply_to_text_estimators(estimator, check, tiny_gemma):
    check(_on_tiny(estimator, tiny_gemma))


@pytest.mark.parametrize(
    "estimator, check",
    [
        pytest.param(e, c, id=f"{type(e).__name__}-{_check_id(c)}")
        for e, c in _TEXT_CASES
        if _check_name(c) in CANNOT_APPLY[type(e).__name__]
    ],
)
def test_checks_that_cannot_apply_fail_for_the_stated_reason(estimator, check, tiny_gemma):
    from unittest import SkipTest

    reason = CANNOT_APPLY[type(estimator).__name__][_check_name(check)]
    with pytest.raises(Exception) as caught:  # the check's own failure
        check(_on_tiny(estimator, tiny_gemma))
    if reason == _ARRAY_API:
        assert caught.type is SkipTest and "SCIPY_ARRAY_API" in str(caught.value)
        return
    if reason == _NO_ROWS:
        assert "does not raise a ValueError when an empty data" in str(caught.value)
        return
    chain, exc = [], caught.value
    while exc is not None:
        chain.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    assert any(REFUSAL.search(text) for text in chain), chain


@pytest.mark.parametrize(
    "estimator",
    [e for e in TEXT_ESTIMATORS if hasattr(e, "predict")],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_an_unfitted_classifier_says_so_on_arena_rows(estimator, method, arena, tiny_gemma):
    # predict read classes_ before predict_proba checked the fit: AttributeError
    from sklearn.exceptions import NotFittedError

    from gemma_pref import ArenaTextFormatter

    estimator = _on_tiny(estimator, tiny_gemma)
    rows = arena.head(2)
    X = (
        ArenaTextFormatter().transform(rows)
        if isinstance(estimator, GemmaPreferenceClassifier)
        else rows
    )
    with pytest.raises(
        NotFittedError, match=f"This {type(estimator).__name__} instance is not fitted yet"
    ):
        getattr(estimator, method)(X)


@pytest.mark.parametrize("estimator", TEXT_ESTIMATORS, ids=lambda e: type(e).__name__)
def test_every_check_of_its_kind_is_run_or_listed(estimator):
    given = {_check_name(c) for c in _checks_for_its_kind(estimator)}
    listed = set(CANNOT_APPLY[type(estimator).__name__])
    assert listed <= given, sorted(listed - given)  # no reason for a check not given
    assert len(given - listed) >= 12  # the API checks, at least, run


#: Checks PairDifferenceClassifier fails by design: its X is two vectors side
#: by side (an even number of columns, compared half against half) and its y
#: has a meaning (0: A wins, 1: B wins, 2: tie; swapping A and B exchanges 0
#: and 1), so generic data with 3 or 5 columns, or labels such as "one" or 3,
#: is rejected with an error that says so.
_ODD_COLUMNS = "scikit-learn's data has an odd number of columns"
_LABELS = "labels other than 0 (A wins), 1 (B wins), 2 (tie) are rejected"
PAIR_EXPECTED_FAILURES = {
    **dict.fromkeys(
        [
            "check_fit_score_takes_y",
            "check_dont_overwrite_parameters",
            "check_estimators_dtypes",
            "check_pipeline_consistency",
            "check_estimators_nan_inf",
            "check_estimators_pickle",
            "check_f_contiguous_array_estimator",
            "check_supervised_y_2d",
            "check_methods_sample_order_invariance",
            "check_methods_subset_invariance",
            "check_fit2d_1feature",
            "check_dict_unchanged",
            "check_fit2d_predict1d",
            "check_fit2d_1sample",
        ],
        _ODD_COLUMNS,
    ),
    **dict.fromkeys(
        [
            "check_dtype_object",
            "check_classifiers_one_label",
            "check_classifiers_classes",
            "check_classifiers_regression_target",
        ],
        _LABELS,
    ),
    # two-feature blobs: a difference of the two columns cannot separate them
    "check_classifiers_train": "two columns give one difference feature",
}


def _expected_failures(estimator):
    if isinstance(estimator, PairDifferenceClassifier):
        return PAIR_EXPECTED_FAILURES
    return {}


@parametrize_with_checks(
    [PairDifferenceClassifier(Cs=(0.1, 1.0), cv=2)],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_no_public_fitted_names_before_fit(estimator):
    """Names ending in ``_`` are fitted state: none exists on a new estimator,
    not even as a property of the class (read statically: nothing is loaded)."""
    import inspect

    names = {n for n in dir(type(estimator)) if n.endswith("_") and not n.startswith("_")}
    names |= {n for n in vars(estimator) if n.endswith("_") and not n.startswith("_")}
    present = []
    for name in names:
        try:
            inspect.getattr_static(estimator, name)
        except AttributeError:
            continue
        present.append(name)
    assert present == []
