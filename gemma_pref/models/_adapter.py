# SPDX-License-Identifier: Apache-2.0
"""The adapter side of :class:`~gemma_pref.models.GemmaPreferenceClassifier`.

:class:`AdapterMixin` holds its LoRA configuration, the replicas of the base with the fitted
adapter applied (checked against the checkpoint it was trained on), their head
(:class:`LogitsHead`) and the writing of a peft adapter directory. peft is imported when used.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backend import _checkpoints
from ..embedding._checkpoint import CheckpointMixin

__all__ = ["AdapterMixin", "LogitsHead", "import_peft"]


def import_peft() -> Any:
    """peft, or an ``ImportError`` saying how to install it."""
    try:
        import peft
    except ImportError as exc:  # pragma: no cover - peft is a dependency
        raise ImportError("GemmaPreferenceClassifier needs peft: pip install 'peft>=0.17'") from exc
    return peft


class AdapterMixin(CheckpointMixin):
    """The adapter side of :class:`~gemma_pref.models.GemmaPreferenceClassifier`.

    Expects the classifier's parameters and fitted attributes annotated below
    (and those of :class:`~gemma_pref.embedding._checkpoint.CheckpointMixin`).
    """

    target_modules: Any
    lora_r: Any
    lora_alpha: Any
    lora_dropout: Any
    classes_: Any
    adapter_weights_: Any
    base_fingerprint_: Any

    def _lora_config(self, inference: bool = False) -> Any:
        peft = import_peft()
        target = self.target_modules
        return peft.LoraConfig(
            task_type=peft.TaskType.SEQ_CLS,
            r=int(self.lora_r),
            lora_alpha=float(self.lora_alpha),
            lora_dropout=float(self.lora_dropout),
            target_modules=target if isinstance(target, str) else list(target),
            inference_mode=inference,
        )

    def _runtime(self, devices: list[str]) -> Any:
        model_dir = self._model_dir()
        fingerprint = _checkpoints.model_fingerprint(model_dir, include_path=False)
        if fingerprint != self.base_fingerprint_:
            raise ValueError(
                f"The checkpoint at {str(model_dir)!r} is not the one this "
                "GemmaPreferenceClassifier was fine-tuned on (its content fingerprint "
                f"is {fingerprint[:12]}, the adapter was trained on "
                f"{self.base_fingerprint_[:12]}); restore that checkpoint at this "
                "path, or set model_name_or_path to where it is."
            )
        from ._training import load_adapted_classifier

        return self._load_runtime(
            devices,
            label="GemmaPreferenceClassifier",
            progress=self._show_progress(),
            extra_key=(id(self.adapter_weights_),),
            load_model=load_adapted_classifier,
            adapter_weights=self.adapter_weights_,
            lora_config=self._lora_config(inference=True),
            num_labels=len(self.classes_),
        )

    def _head(self) -> LogitsHead:
        import hashlib

        digest = getattr(self, "_lazy_adapter_digest", None)
        if digest is None or digest[0] is not self.adapter_weights_:
            value = hashlib.sha256(self.adapter_weights_).hexdigest()[:16]
            digest = (self.adapter_weights_, value)
            self._lazy_adapter_digest = digest
        return LogitsHead(digest[1])

    def _write_adapter(self, path: str | os.PathLike[str]) -> Path:
        """The body of ``save_adapter``: write the fitted adapter at ``path``."""
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise FileExistsError(
                f"{str(path)!r} exists and is not an empty directory; choose a new "
                "path (an adapter is never written over other files)."
            )
        config = self._lora_config(inference=True)
        config.base_model_name_or_path = str(self._model_dir())
        path.mkdir(parents=True, exist_ok=True)
        config.save_pretrained(str(path))
        (path / "adapter_model.safetensors").write_bytes(self.adapter_weights_)
        (path / "gemma_pref.json").write_text(
            json.dumps(
                {
                    "classes": self.classes_.tolist(),
                    "max_length": int(self.max_length),
                    "base_fingerprint": self.base_fingerprint_,
                },
                indent=2,
                default=str,
            )
        )
        return path


@dataclass(frozen=True)
class LogitsHead:
    """The classifier's head: the class logits of the last real token.

    ``adapter`` (a digest of the fitted adapter's weights) tells exports of
    different fits apart.
    """

    adapter: str

    def __call__(self, model: Any, input_ids: Any, mask: Any) -> Any:
        return model(input_ids=input_ids, attention_mask=mask).logits
