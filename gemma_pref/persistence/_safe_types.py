# SPDX-License-Identifier: Apache-2.0
"""The classes the safe format writes and builds: :data:`SAFE_TYPES`, with their hooks."""

from __future__ import annotations

from typing import Any

from ._safe_codec import Reader, SafeType, Writer

__all__ = ["SAFE_TYPES"]


def _write_finetuned(est: Any, writer: Writer, where: str) -> Any:
    # the adapter (safetensors bytes) goes to a file of its own
    state = writer.state(est, where, exclude=("adapter_weights_",))
    blob = vars(est).get("adapter_weights_")
    if blob is not None:
        state["adapter_weights_"] = writer.add_file(
            "adapter", ".safetensors", lambda path: path.write_bytes(blob)
        )
    return state


def _read_finetuned(est: Any, state: Any, reader: Reader, where: str) -> None:
    if not isinstance(state, dict):
        raise reader.error(where, "bad fitted state")
    state = dict(state)
    file = state.pop("adapter_weights_", None)
    reader.set_state(est, state, where)
    if file is not None:
        vars(est)["adapter_weights_"] = reader.member(file, where).read_bytes()


def _write_catboost(est: Any, writer: Writer, where: str) -> Any:
    if not est.is_fitted():
        return None
    return writer.add_file("catboost", ".cbm", lambda path: est.save_model(str(path), format="cbm"))


def _read_catboost(est: Any, file: Any, reader: Reader, where: str) -> None:
    if file is not None:
        est.load_model(str(reader.member(file, where)), format="cbm")


def _read_auto_catboost(est: Any, file: Any, reader: Reader, where: str) -> None:
    chosen = "task_type" in est.get_params()
    _read_catboost(est, file, reader, where)
    if not chosen:  # the device is chosen at each fit, not kept as a parameter
        est._init_params.pop("task_type", None)


#: Classes that :func:`save_safe` writes and :func:`load_safe` builds, by the
#: name used in ``manifest.json``. Nothing else is ever constructed.
SAFE_TYPES: dict[str, SafeType] = {
    "gemma_pref.ArenaTextFormatter": SafeType("gemma_pref.text.formatting", "ArenaTextFormatter"),
    "gemma_pref.GemmaEmbedder": SafeType("gemma_pref.embedding", "GemmaEmbedder"),
    "gemma_pref.ArenaStructureFeatures": SafeType(
        "gemma_pref.text.features", "ArenaStructureFeatures"
    ),
    "gemma_pref.SwapABClassifier": SafeType("gemma_pref.models.augmentation", "SwapABClassifier"),
    "gemma_pref.PairDifferenceClassifier": SafeType(
        "gemma_pref.models.pairwise", "PairDifferenceClassifier"
    ),
    "gemma_pref.PreferenceBlendClassifier": SafeType(
        "gemma_pref.models.blend", "PreferenceBlendClassifier"
    ),
    "gemma_pref.GemmaPreferenceClassifier": SafeType(
        "gemma_pref.models.finetune",
        "GemmaPreferenceClassifier",
        _write_finetuned,
        _read_finetuned,
    ),
    "gemma_pref.AutoDeviceCatBoostClassifier": SafeType(
        "gemma_pref.models._catboost",
        "AutoDeviceCatBoostClassifier",
        _write_catboost,
        _read_auto_catboost,
    ),
    "sklearn.pipeline.Pipeline": SafeType("sklearn.pipeline", "Pipeline"),
    "gemma_pref.PromptGroupedPipeline": SafeType("gemma_pref.pipeline", "PromptGroupedPipeline"),
    "sklearn.pipeline.FeatureUnion": SafeType("sklearn.pipeline", "FeatureUnion"),
    "sklearn.preprocessing.StandardScaler": SafeType("sklearn.preprocessing", "StandardScaler"),
    "sklearn.linear_model.LogisticRegression": SafeType(
        "sklearn.linear_model", "LogisticRegression"
    ),
    "catboost.CatBoostClassifier": SafeType(
        "catboost", "CatBoostClassifier", _write_catboost, _read_catboost
    ),
}
