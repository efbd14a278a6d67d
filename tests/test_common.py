"""scikit-learn's estimator checks, including the ones its text tags skip."""

from __future__ import annotations

import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_cloneable,
    check_estimator_repr,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    parametrize_with_checks,
)

from gemma_pref import ArenaTextFormatter, GemmaEmbedder
from gemma_pref.augmentation import SwapABClassifier
from gemma_pref.features import ArenaStructureFeatures

ESTIMATORS = [
    ArenaTextFormatter(),
    GemmaEmbedder(),
    ArenaStructureFeatures(),
    SwapABClassifier(LogisticRegression()),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "check",
    [
        check_no_attributes_set_in_init,
        check_do_not_raise_errors_in_init_or_set_params,
        check_parameters_default_constructible,
        check_get_params_invariance,
        check_set_params,
        check_estimator_repr,
        check_estimator_cloneable,
    ],
    ids=lambda c: c.__name__,
)
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_checks_that_text_tags_skip(estimator, check):
    check(type(estimator).__name__, estimator)
