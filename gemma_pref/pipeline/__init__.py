# SPDX-License-Identifier: Apache-2.0
"""Recipes: whole preference pipelines built by :func:`make_preference_pipeline`.

Also the classifiers the recipes use and :func:`model_steps` / :func:`set_model_params`, which
reach every model step inside a built pipeline.

Modules: ``recipes`` (what each recipe is made of: its formatter, its classifier,
:class:`PromptGroupedPipeline`), ``build`` (:func:`make_preference_pipeline`) and ``steps``
(:func:`model_steps`, :func:`set_model_params`).
"""

from __future__ import annotations

from .build import make_preference_pipeline
from .recipes import (
    RECIPES,
    PromptGroupedPipeline,
    make_catboost_classifier,
    make_recipe_classifier,
    make_recipe_formatter,
)
from .steps import model_steps, set_model_params

__all__ = [
    "RECIPES",
    "PromptGroupedPipeline",
    "make_catboost_classifier",
    "make_preference_pipeline",
    "make_recipe_classifier",
    "make_recipe_formatter",
    "model_steps",
    "set_model_params",
]
