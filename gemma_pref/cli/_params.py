# SPDX-License-Identifier: Apache-2.0
"""From flags to estimators: ``--layer``, the model step's parameters, the
recipe's pipeline, and the overrides ``predict`` applies to a loaded pipeline.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._common import CLIError


def parse_layer(text: str) -> float | int | range | list[float | int]:
    """``--layer``: ``"-1"`` or ``"9"`` (one index), ``"0.5"`` (that fraction of
    the depth), ``"8-12"`` (8 to 12, both included: ``range(8, 13)``) or
    ``"8,9,10"`` (a list; negative indices and fractions allowed), as the embedder's
    ``layer`` parameter takes them.

    Examples
    --------
    >>> parse_layer("-1"), parse_layer("0.5"), parse_layer("8-12"), parse_layer("8, 10,-2")
    (-1, 0.5, range(8, 13), [8, 10, -2])
    >>> parse_layer("0.45,0.55")
    [0.45, 0.55]
    """
    raw = text.strip()

    def one(part: str) -> float | int:
        return float(part) if "." in part else int(part)

    try:
        if "," in raw:
            return [one(part) for part in raw.split(",")]
        if "." in raw:
            return float(raw)
        first, sep, last = raw[1:].partition("-")
        if sep:  # "8-12"; the leading character may be a minus sign
            start, stop = int(raw[0] + first), int(last)
            if start < 0 or stop < start:
                raise ValueError(text)
            return range(start, stop + 1)
        return int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a hidden-state index (-1, 9), a fraction of the depth (0.5), a "
            f"range of indices (8-12, both included) or a comma list (8,9,10); got {text!r}"
        ) from None


def _devices(value: str) -> Any:
    """``--devices``: ``"auto"``, one device, or a comma list of devices."""
    if value != "auto" and "," in value:
        return [d.strip() for d in value.split(",") if d.strip()]
    return value


def _embedder_params(args: argparse.Namespace) -> dict[str, Any]:
    devices = _devices(args.devices)
    cache_dir = None if args.no_cache else args.cache_dir
    params: dict[str, Any] = {
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "max_tokens_per_batch": args.max_tokens_per_batch,
        "devices": devices,
        "quantization": args.quantization,
        "dtype": args.dtype,
        "backend": args.backend,
        "cache_dir": cache_dir,
    }
    if getattr(args, "revision", None) is not None:
        params["revision"] = args.revision
    if getattr(args, "layer", None) is not None:
        params["layer"] = args.layer
    return params


def model_from_flags(args: argparse.Namespace) -> str | None:
    """``--model``, checked with the library's resolver (a local checkpoint
    directory, or a Hugging Face Hub name, cached or downloaded once)."""
    if args.model is None:
        return None
    from ..backend._checkpoints import resolve_model_dir

    resolve_model_dir(args.model, args.revision)  # names the path; a Hub name downloads once
    return str(args.model)


def _model_params(args: argparse.Namespace) -> dict[str, Any]:
    """Parameters of the recipe's model step: the embedder or the fine-tuned classifier."""
    params = _embedder_params(args)
    if args.recipe != "finetune":
        # unset: the recipe's default (the pairwise recipes' PAIRWISE_DEFAULTS)
        for name in ("batch_size", "max_length"):
            if params[name] is None:
                del params[name]
        return params
    del params["cache_dir"]  # nothing to cache: the model itself is trained
    if "layer" in params:
        raise CLIError(
            "--layer applies to the embedding recipes (pairwise, seed), not --recipe finetune"
        )
    params = {k: v for k, v in params.items() if v is not None}
    params.update(
        num_epochs=args.epochs,
        learning_rate=args.learning_rate,
        lora_r=args.lora_r,
        random_state=args.seed,
    )
    return params


def embedder_from_flags(args: argparse.Namespace) -> Any:
    """The embedder of ``gemma-pref embed``: the recipe's defaults, then the flags."""
    import gemma_pref as gp
    from gemma_pref.pipeline.recipes import PAIRWISE_DEFAULTS

    params = _model_params(args)
    if args.recipe in ("pairwise", "embedding"):
        params = {**PAIRWISE_DEFAULTS, **params}
    return gp.GemmaEmbedder(model_from_flags(args), **params)


def _check_budget(args: argparse.Namespace) -> None:
    if args.budget and args.recipe == "structure":
        raise CLIError(
            "--budget shares the model's tokens between the prompt and the answers: "
            "--recipe structure reads no tokens"
        )


def build_pipeline(args: argparse.Namespace) -> Any:
    import gemma_pref as gp
    from gemma_pref.pipeline import make_recipe_classifier, make_recipe_formatter

    if args.C is not None and args.C <= 0:
        raise CLIError(f"--C must be positive, got {args.C}")
    if args.recipe in ("pairwise", "structure"):
        if args.classifier != "auto" or args.C is not None:
            raise CLIError(
                f"--recipe {args.recipe} chooses its own models and C by cross-validation; "
                "--classifier and --C apply to --recipe embedding and seed"
            )
        if args.recipe == "structure":
            _check_budget(args)
            return gp.make_preference_pipeline(recipe="structure", swap_augment=args.swap_augment)
    model = model_from_flags(args)
    classifier = None
    if args.recipe in ("embedding", "seed"):
        classifier = make_recipe_classifier(
            args.recipe, args.classifier, C=args.C, iterations=args.iterations
        )
    elif args.classifier != "auto":
        raise CLIError("--classifier applies to the embedding recipes, not --recipe finetune")
    return gp.make_preference_pipeline(
        model,
        recipe=args.recipe,
        classifier=classifier,
        formatter=make_recipe_formatter(
            args.recipe,
            model,
            max_length=args.max_length,
            budget=args.budget,
            turns=args.turns,
        ),
        swap_augment=args.swap_augment,
        **_model_params(args),
    )


def override_model_params(args: argparse.Namespace, estimator: Any) -> None:
    """Apply ``--devices``, ``--quantization``, ``--dtype``, ``--backend`` and
    ``--batch-size`` to every model step of a loaded pipeline (whatever wraps
    it); the options not given keep what the pipeline was fitted with."""
    from ..models.finetune import GemmaPreferenceClassifier
    from ..pipeline.steps import model_steps

    params: dict[str, Any] = {}
    if args.devices is not None:
        params["devices"] = _devices(args.devices)
    if args.quantization is not None:
        params["quantization"] = None if args.quantization == "none" else args.quantization
    if args.dtype is not None:
        params["dtype"] = args.dtype
    if args.backend is not None:
        params["backend"] = args.backend
    if not params and args.batch_size is None:
        return
    steps = model_steps(estimator)
    if not steps:
        raise CLIError(
            f"the pipeline ({type(estimator).__name__}) holds no GemmaEmbedder or "
            "GemmaPreferenceClassifier: --devices, --quantization, --dtype, --backend "
            "and --batch-size do not apply to it"
        )
    for step in steps:
        own = dict(params)
        if args.batch_size is not None:
            # the fine-tuned classifier's prediction batches have their own parameter
            name = (
                "predict_batch_size"
                if isinstance(step, GemmaPreferenceClassifier)
                else "batch_size"
            )
            own[name] = args.batch_size
        step.set_params(**own)
