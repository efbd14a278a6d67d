# SPDX-License-Identifier: Apache-2.0
"""The ``gemma-pref`` command line: ``fit``, ``predict``, ``cv``, ``embed`` and ``cache``.

This is the only module that writes to stdout. Every output file is written to
a temporary name and renamed into place, so a failed or interrupted run never
leaves a half-written file, and an existing file is only replaced when
``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .._atomic import atomic_path
from ..exceptions import ArenaFormatError
from ..schema import WINNER_COLUMNS

__all__ = ["main"]

logger = logging.getLogger("gemma_pref.cli")

DEFAULT_PIPELINE = "gemma-pref-pipeline.joblib"


class CLIError(Exception):
    """An error reported to the user as one line, exit status 1."""


# --------------------------------------------------------------------- helpers
def _out(message: str = "") -> None:
    print(message, flush=True)


_PARAMETER = re.compile(r"\b(cell_format|format)='(\w+)'")


def _as_flags(message: str) -> str:
    """A reader's message with its parameters as this command line's flags.

    Examples
    --------
    >>> _as_flags("pass format='wsdm' or cell_format='text'")
    'pass --format wsdm or --cell-format text'
    """
    return _PARAMETER.sub(lambda m: f"--{m.group(1).replace('_', '-')} {m.group(2)}", message)


#: What each kind of output is, for the messages of :func:`_check_output`.
_KINDS = {
    "joblib": "a pipeline file gemma-pref wrote",
    "submission": "a submission gemma-pref wrote (its header is not a submission's)",
    "cv": "a cv report gemma-pref wrote",
    "npy": "a NumPy .npy file",
    "png": "a PNG image",
}


def _inputs(args: argparse.Namespace) -> list[Path]:
    """The files and folders the command reads."""
    names = ("train", "test", "input", "pipeline", "sample_submission")
    return [Path(v) for v in (getattr(args, n, None) for n in names) if v]


def _not_an_input(path: Path, args: argparse.Namespace) -> None:
    """Refuse an output that is one of the command's inputs, whatever the flags."""
    target = path.resolve()
    for source in _inputs(args):
        if source.exists() and source.resolve() == target:
            raise CLIError(
                f"the output {str(path)!r} is the command's input {str(source)!r}: it is "
                "never replaced; choose another output path"
            )


def _check_output(
    path: str | os.PathLike[str], overwrite: bool, kind: str, args: argparse.Namespace
) -> Path:
    """The output ``path``: new, or with ``--overwrite`` the library's own
    output of ``kind`` (never a file of the user's, never an input)."""
    from .._ownership import is_own_output

    path = Path(path)
    _not_an_input(path, args)
    if path.exists() and not overwrite:
        raise CLIError(f"{str(path)!r} already exists; pass --overwrite to replace it")
    if path.is_dir():
        raise CLIError(f"{str(path)!r} is a directory; expected a file path")
    if path.exists() and not is_own_output(path, kind):
        raise CLIError(
            f"{str(path)!r} exists and is not {_KINDS[kind]}: --overwrite replaces only "
            "what gemma-pref wrote; choose another output path"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CLIError(f"output directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise CLIError(f"output directory {str(parent)!r} is not writable")
    return path


def _atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)`` then rename ``tmp`` to ``path``; no partial file on error."""
    with atomic_path(path) as tmp:
        write(tmp)


def _read_rows(
    args: argparse.Namespace, path: str | None, *, labels: bool, what: str
) -> tuple[Any, str]:
    """Rows of ``path`` (any format :func:`~gemma_pref.read_preferences` reads,
    by ``--format`` and ``--cell-format``) as arena rows, or the bundled
    sample; the format read is in ``df.attrs["gemma_pref_format"]``."""
    import gemma_pref as gp
    from gemma_pref.readers import FORMAT_ATTR

    if path is None:
        df = gp.load_arena_sample()  # marked as the LMSYS format it is
        source = "bundled arena sample (715 rows of the Kaggle train.csv)"
        if not labels:
            df = df.drop(columns=list(WINNER_COLUMNS))
        return df, source
    df, y = gp.read_preferences(path, format=args.format, cell_format=args.cell_format)
    if labels and y is None:
        raise CLIError(
            f"{what} file {path!r} has no labels: expected a 'winner' column or the "
            "one-hot columns winner_model_a, winner_model_b[, winner_tie]"
        )
    return df, f"{path} ({df.attrs[FORMAT_ATTR]} format)"


def _has_labels(df: Any) -> bool:
    return {"winner_model_a", "winner_model_b"} <= set(map(str, df.columns))


def _classes(estimator: Any, proba: Any) -> Any:
    import numpy as np

    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        return np.asarray(classes)
    return np.arange(3 if proba is None else proba.shape[1])


def _submission_format(args: argparse.Namespace, df: Any, classes: Any, sample: Any) -> str:
    """``--submission-format``, or the test file's (or sample submission's) competition."""
    from gemma_pref.readers import FORMAT_ATTR

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


def _plan_submission(args: argparse.Namespace, df: Any, classes: Any) -> dict[str, Any]:
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
    from ..io import check_unique_ids

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


def _write_submission(plan: dict[str, Any], proba: Any, classes: Any, out: Path) -> str:
    """Write the planned submission; return what was written."""
    import numpy as np

    import gemma_pref as gp

    if plan["order"] is not None:
        proba = np.asarray(proba)[plan["order"]]
    gp.write_submission(plan["ids"], proba, out, format=plan["format"], classes=classes)
    columns = ",".join(gp.io.SUBMISSION_FORMATS[plan["format"]])
    return f"{out} ({plan['format'].upper()} format: {columns})"


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


def _model(args: argparse.Namespace) -> str | None:
    """``--model``, checked with the library's resolver (a local checkpoint
    directory, or a Hugging Face Hub name, cached or downloaded once)."""
    if args.model is None:
        return None
    from .._loading import resolve_model_dir

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


def _embedder(args: argparse.Namespace) -> Any:
    """The embedder of ``gemma-pref embed``: the recipe's defaults, then the flags."""
    import gemma_pref as gp
    from gemma_pref.pipeline import PAIRWISE_DEFAULTS

    params = _model_params(args)
    if args.recipe in ("pairwise", "embedding"):
        params = {**PAIRWISE_DEFAULTS, **params}
    return gp.GemmaEmbedder(_model(args), **params)


def _check_budget(args: argparse.Namespace) -> None:
    if args.budget and args.recipe == "structure":
        raise CLIError(
            "--budget shares the model's tokens between the prompt and the answers: "
            "--recipe structure reads no tokens"
        )


def _build_pipeline(args: argparse.Namespace) -> Any:
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
    model = _model(args)
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


def _compute(estimator: Any, formatter: Any = None) -> str:
    """``"; compute: ..."``: what the model step of ``estimator`` runs on, or ``""``."""
    from ..model_steps import model_steps, text_formatters

    steps = model_steps(estimator)
    if not steps:
        return ""
    path = steps[-1].compute_path()  # the fitted copy, where a wrapper holds two
    devices = ",".join(path["devices"])
    layers = ""
    if path.get("layers", "last") != "last":
        run = path.get("decoder_layers", "all")
        layers = f", hidden states {','.join(map(str, path['layers']))} pooled" + (
            "" if run == "all" else f", {run} decoder layers run"
        )
    quantization = path.get("quantization")
    weights = "" if quantization is None else f"{quantization} weights, "
    formatters = text_formatters(estimator) if formatter is None else [formatter]
    template = "" if not formatters else f"; template: {formatters[-1].template_in_use()}"
    return (
        f"; compute: {path['backend']} {weights}{path['dtype']} on {devices} "
        f"({path['reason']}){layers}"
        f"{template}"
    )


def _override_model_params(args: argparse.Namespace, estimator: Any) -> None:
    """Apply ``--devices``, ``--quantization``, ``--dtype``, ``--backend`` and
    ``--batch-size`` to every model step of a loaded pipeline (whatever wraps
    it); the options not given keep what the pipeline was fitted with."""
    from ..finetune import GemmaPreferenceClassifier
    from ..model_steps import model_steps

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


def _summary(
    name: str,
    rows: int,
    seconds: float,
    extra: str = "",
    estimator: Any = None,
    formatter: Any = None,
) -> None:
    rate = rows / seconds if seconds > 0 else float("inf")
    compute = "" if estimator is None else _compute(estimator, formatter)
    _out(f"{name}: {rows} rows in {seconds:.1f} s ({rate:.2f} rows/s){extra}{compute}")


# -------------------------------------------------------------------- commands
def cmd_fit(args: argparse.Namespace) -> int:
    import gemma_pref as gp
    from gemma_pref.evaluation import preference_scores

    out = _check_output(args.output, args.overwrite, "joblib", args)
    df, source = _read_rows(args, args.train, labels=True, what="training")
    y = gp.labels_from_winner(df)
    pipe = _build_pipeline(args)
    _out(f"fit: {len(df)} rows from {source}")
    start = time.perf_counter()
    pipe.fit(df, y)
    seconds = time.perf_counter() - start
    gp.save(pipe, out, overwrite=args.overwrite)  # atomic; records the library versions
    proba = pipe.predict_proba(df)
    train = preference_scores(y, proba, _classes(pipe, proba))
    _summary(
        "fit",
        len(df),
        seconds,
        f"; training-set log loss {train['log_loss']:.4f}, accuracy {train['accuracy']:.3f} "
        f"(optimistic); saved {out}",
        pipe,
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import gemma_pref as gp
    from gemma_pref.evaluation import preference_scores

    pipeline_path = Path(args.pipeline)
    if not pipeline_path.is_file():
        raise CLIError(
            f"pipeline file {str(pipeline_path)!r} not found (create it with gemma-pref fit)"
        )
    if args.engine == "ray":
        return _predict_on_ray(args, pipeline_path)
    out = _check_output(args.output or "submission.csv", args.overwrite, "submission", args)
    df, source = _read_rows(args, args.test, labels=False, what="test")
    pipe = gp.load(pipeline_path)  # warns when saved by other versions
    _override_model_params(args, pipe)
    classes = _classes(pipe, None)
    plan = _plan_submission(args, df, classes)  # before the long part
    _out(f"predict: {len(df)} rows from {source}")
    start = time.perf_counter()
    proba = pipe.predict_proba(df)
    seconds = time.perf_counter() - start
    classes = _classes(pipe, proba)
    extra = f"; wrote {_write_submission(plan, proba, classes, out)}"
    if _has_labels(df):
        s = preference_scores(gp.labels_from_winner(df), proba, classes)
        extra = f"; log loss {s['log_loss']:.4f}, accuracy {s['accuracy']:.3f}" + extra
    _summary("predict", len(df), seconds, extra, pipe)
    return 0


@contextlib.contextmanager
def _truncation_warned_once(what: str) -> Iterator[None]:
    """Show the ``TruncationWarning`` of the embedding calls inside once, at the end.

    A cross-validation embeds each fold's training rows and its held-out rows:
    each call warns about its own rows, which would repeat the same advice
    twice a fold. The first is shown, saying how many calls warned.
    """
    import warnings

    from ..exceptions import TruncationWarning

    said: list[tuple[Any, str, int]] = []
    show = warnings.showwarning

    def collect(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, TruncationWarning):
            said.append((message, filename, lineno))
        else:
            show(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        # every call counted, unless a filter of the user's says otherwise
        warnings.filterwarnings("always", category=TruncationWarning, append=True)
        warnings.showwarning = collect
        yield
    if not said:
        return
    first, filename, lineno = said[0]
    if len(said) > 1:
        first = TruncationWarning(
            f"{first} (Said by {len(said)} embedding calls of this {what}, one for each "
            "fold's training rows and one for its held-out rows, about their own rows; "
            "this is the first.)",
            counts=first.counts,
            rows=first.rows,
            n_rows=first.n_rows,
            max_length=first.max_length,
        )
    warnings.warn_explicit(first, TruncationWarning, filename, lineno)


def cmd_cv(args: argparse.Namespace) -> int:
    import gemma_pref as gp
    from gemma_pref.evaluation import cross_validate_preference, cv_splits

    out = _check_output(args.output, args.overwrite, "cv", args)
    stem = out.with_suffix("") if out.suffix == ".json" else out
    plots = (
        []
        if args.no_plots
        else [
            _check_output(stem.with_name(stem.name + suffix), args.overwrite, "png", args)
            for suffix in (".reliability.png", ".confusion.png")
        ]
    )
    df, source = _read_rows(args, args.train, labels=True, what="training")
    y = gp.labels_from_winner(df)
    pipe = _build_pipeline(args)
    grouped = not args.no_group
    if args.folds < 2:
        raise CLIError(f"--folds must be at least 2, got {args.folds}")
    splits = cv_splits(df, y, folds=args.folds, grouped=grouped, random_state=0)
    _out(
        f"cv: {len(df)} rows from {source}; {args.folds} folds"
        f"{', grouped by prompt' if grouped else ''}"
    )

    def on_fold(fold: Any, model: Any) -> None:
        _out(f"  fold {fold.fold}: log loss {fold.log_loss:.4f}, accuracy {fold.accuracy:.3f}")

    with _truncation_warned_once("cross-validation"):
        result = cross_validate_preference(
            pipe,
            df,
            y,
            splits=splits,
            grouped=grouped,
            on_fold=on_fold,
            show_progress_bar=logging.getLogger("gemma_pref").isEnabledFor(logging.INFO),
        )
    report = {
        **result.to_dict(ddof=0),
        "source": source,
        "plots": [str(p) for p in plots],
        "model": args.model or "default (Gemma 3 270M)",
        "settings": {k: v for k, v in vars(args).items() if k != "func"},
    }
    _atomic(out, lambda tmp: tmp.write_text(json.dumps(report, indent=2, default=str)))
    if plots:
        from ..plots import save_cv_plots

        title = (
            f"{args.folds}-fold CV, {len(df)} rows: log loss {report['oof']['log_loss']:.4f}, "
            f"accuracy {report['oof']['accuracy']:.3f}"
        )
        save_cv_plots(y, result.oof, stem, title=title)
        _out(f"wrote {plots[0]} and {plots[1]}")
    _out(
        f"cv log loss {report['log_loss']:.4f} +/- {report['log_loss_std']:.4f}, "
        f"accuracy {report['accuracy']:.3f} (class prior: log loss "
        f"{report['class_prior_log_loss']:.4f})"
    )
    if len(result.classes) == 2:
        _out(
            "two classes (model_a, model_b; no tie): the WSDM Cup 2025 scores accuracy "
            f"(class prior: accuracy {report['class_prior_accuracy']:.3f})"
        )
    _summary("cv", len(df), result.seconds, f"; wrote {out}", pipe)
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from gemma_pref.pipeline import make_recipe_formatter

    if args.recipe in ("finetune", "structure"):
        raise CLIError("embed writes embeddings: use --recipe pairwise, embedding or seed")
    formatter = make_recipe_formatter(
        args.recipe,
        _model(args),
        max_length=args.max_length,
        budget=args.budget,
        turns=args.turns,
        swap=args.swap,
    )
    if args.engine == "ray":
        return _embed_on_ray(args, formatter)
    out = _check_output(args.output or "embeddings.npy", args.overwrite, "npy", args)
    if out.suffix != ".npy":
        raise CLIError(f"output {str(out)!r} must end in .npy")
    df, source = _read_rows(args, args.input, labels=False, what="input")
    texts = formatter.fit_transform(df)
    embedder = _embedder(args)
    _out(f"embed: {len(df)} rows from {source}")
    start = time.perf_counter()
    X = embedder.fit_transform(texts)
    seconds = time.perf_counter() - start

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, X)

    _atomic(out, save)
    _summary("embed", len(df), seconds, f"; wrote {out} {X.shape} float32", embedder, formatter)
    return 0


# ------------------------------------------------------------------- on Ray
def cmd_cache_list(args: argparse.Namespace) -> int:
    from ..demo_model import gemma_pref_home
    from ..home_cache import format_table, list_cache

    entries = list_cache(args.kind)
    home = gemma_pref_home()
    if args.json:
        _out(
            json.dumps(
                {
                    "home": str(home),
                    "entries": [e.to_dict() for e in entries],
                    "total_size": sum(e.size for e in entries if e.own),
                },
                indent=2,
            )
        )
        return 0
    _out(f"gemma-pref cache: {home}")
    _out(format_table(entries) if entries else "(empty)")
    return 0


def cmd_cache_remove(args: argparse.Namespace) -> int:
    from ..demo_model import gemma_pref_home
    from ..home_cache import format_size, list_cache, remove_entries

    if bool(args.keys) == bool(args.all):
        args.parser.error("give the KEYs of the entries to remove, or --all (not both)")
    if args.kind and not args.all:
        args.parser.error("--kind applies to --all; a KEY names its kind itself")
    home = gemma_pref_home()
    if args.all:
        listed = list_cache(args.kind)
        chosen = [e for e in listed if e.own]
        kept = len(listed) - len(chosen)
        what = f"{len(chosen)} entr{'y' if len(chosen) == 1 else 'ies'}"
        what += f" ({format_size(sum(e.size for e in chosen))})"
        if not chosen:
            _out(f"nothing to remove: no entry of gemma-pref's in {str(home)!r}")
            return 0
        if not args.yes:
            if not sys.stdin.isatty():
                raise CLIError(
                    f"--all would remove {what} from {str(home)!r}; pass --yes to remove "
                    "them without asking (the input is not a terminal, so nothing is asked)"
                )
            answer = input(f"Remove {what} from {home}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                _out("nothing removed")
                return 0
    else:
        chosen, kept = args.keys, 0
    removed = remove_entries(chosen)
    for entry in removed:
        _out(f"removed {entry.key} ({format_size(entry.size)})")
    n = len(removed)
    freed = format_size(sum(e.size for e in removed))
    message = f"freed {freed} in {n} entr{'y' if n == 1 else 'ies'}"
    if kept:
        message += f"; kept {kept} not gemma-pref's"
    _out(message)
    return 0


def _ray_rows(args: argparse.Namespace, path: str | None) -> tuple[Any, str]:
    """Arena rows as a Ray Dataset, read by ``--format`` and ``--cell-format``:
    a CSV or Parquet file or directory, or the sample."""
    import gemma_pref as gp
    from gemma_pref import distributed

    if path is None:
        import ray

        df = gp.load_arena_sample().drop(columns=list(WINNER_COLUMNS))
        # blocks are what the actors share out: one DataFrame is one block
        rows = distributed.read_preferences_dataset(
            ray.data.from_pandas(df).repartition(8), format="lmsys"
        )
        return rows, "bundled arena sample (715 rows of the Kaggle train.csv)"
    rows = distributed.read_arena_dataset(path, format=args.format, cell_format=args.cell_format)
    return rows, path


def _ray_output(path: str, overwrite: bool, args: argparse.Namespace) -> Path:
    from .._ownership import foreign_files
    from ..distributed import own_parquet_files

    out = Path(path)
    if out.suffix in {".npy", ".csv"}:
        raise CLIError(
            f"with --engine ray the output is a directory of Parquet shards, not {str(out)!r}"
        )
    _not_an_input(out, args)
    if out.exists() and not overwrite:
        raise CLIError(f"{str(out)!r} already exists; pass --overwrite to replace it")
    if out.exists() or out.is_symlink():  # the rule of write_parquet, before any work
        own = own_parquet_files(out) if out.is_dir() else None
        if own is None:
            raise CLIError(
                f"{str(out)!r} exists and is not an output gemma-pref wrote (no _SUCCESS of "
                "its own): --overwrite replaces only what gemma-pref wrote; choose another output"
            )
        extra = foreign_files(out, own)
        if extra:
            raise CLIError(
                f"{str(out)!r} holds files gemma-pref did not write ({', '.join(extra[:5])}"
                f"{', ...' if len(extra) > 5 else ''}): --overwrite never deletes them; move "
                "them away or choose another output"
            )
    return out


def _on_ray(args: argparse.Namespace, what: str, out: Path, build: Callable[[Any], Any]) -> int:
    """Connect, build the lazy job from the rows, write it atomically, report."""
    from gemma_pref import distributed

    distributed.connect(args.ray_address)
    rows, source = _ray_rows(args, getattr(args, "input", None) or getattr(args, "test", None))
    _out(f"{what} on Ray: rows from {source}")
    start = time.perf_counter()
    written = distributed.write_parquet(build(rows), out, overwrite=args.overwrite)
    seconds = time.perf_counter() - start
    _summary(
        what,
        written["rows"],
        seconds,
        f"; wrote {len(written['files'])} Parquet shard(s) and {distributed.SUCCESS_FILE} to {out}",
    )
    return 0


def _embed_on_ray(args: argparse.Namespace, formatter: Any) -> int:
    from gemma_pref import distributed

    out = _ray_output(args.output or "embeddings", args.overwrite, args)
    embedder = _embedder(args)
    return _on_ray(
        args,
        "embed",
        out,
        lambda rows: distributed.embed_dataset(
            rows,
            embedder,
            formatter=formatter,
            num_replicas=args.replicas,
            num_cpus_per_replica=args.cpus_per_replica,
        ),
    )


def _predict_on_ray(args: argparse.Namespace, pipeline_path: Path) -> int:
    import gemma_pref as gp
    from gemma_pref import distributed

    out = _ray_output(args.output or "predictions", args.overwrite, args)

    def build(rows: Any) -> Any:  # once the first rows are read and checked
        pipe = gp.load(pipeline_path)  # warns when saved by other versions
        _override_model_params(args, pipe)  # each actor then maps devices onto its own GPUs
        return distributed.predict_dataset(
            rows, pipe, num_replicas=args.replicas, num_cpus_per_replica=args.cpus_per_replica
        )

    return _on_ray(args, "predict", out, build)


def _add_engine_args(p: argparse.ArgumentParser, output: str) -> None:
    g = p.add_argument_group("engine")
    g.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process, one replica per device (default); ray: a pool of "
        f"Ray actors, reading CSV or Parquet (a file or a directory of shards) and "
        f"writing {output} as Parquet shards plus _SUCCESS",
    )
    g.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="Ray cluster to join, e.g. ray://head:10001 or auto (default: start a "
        "local Ray, or join the one RAY_ADDRESS names)",
    )
    g.add_argument(
        "--replicas",
        type=int,
        metavar="N",
        help="Ray actors, one model replica each (default: one per GPU, else one)",
    )
    g.add_argument(
        "--cpus-per-replica",
        type=float,
        metavar="N",
        help="CPUs (and torch threads) per actor (default: 1); the actors must leave "
        "Ray a CPU to read the data",
    )


# ---------------------------------------------------------------------- parser
def _add_model_args(p: argparse.ArgumentParser) -> None:
    from ..demo_model import gemma_pref_home
    from ..pipeline import RECIPES

    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        metavar="DIR",
        help="local Hugging Face checkpoint directory, or a Hugging Face Hub name "
        "(e.g. Qwen/Qwen2.5-0.5B-Instruct), found in the local Hugging Face cache or "
        "downloaded into it once (not with HF_HUB_OFFLINE=1) (default: Gemma 3 270M "
        "from the 'demo' extra, converted once into the user cache)",
    )
    g.add_argument(
        "--revision",
        metavar="REV",
        help="branch, tag or commit of a Hub name given to --model (default: main)",
    )
    g.add_argument(
        "--max-length",
        type=int,
        default=None,
        metavar="N",
        help="tokens kept per text (default: 256 for the pairwise and embedding "
        "recipes, 1024 for seed and finetune)",
    )
    g.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="texts per forward pass (default: 8 to embed, 4 to fine-tune)",
    )
    g.add_argument(
        "--max-tokens-per-batch",
        type=int,
        default=None,
        metavar="N",
        help="padded tokens per forward pass (default: no limit)",
    )
    g.add_argument(
        "--devices",
        default="auto",
        help="'auto', 'cpu', 'cuda:0' or a comma list 'cuda:0,cuda:1' (default: auto)",
    )
    g.add_argument(
        "--quantization",
        choices=["4bit", "8bit"],
        default=None,
        help="bitsandbytes quantization (4bit is NF4)",
    )
    g.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="weights/compute dtype (default: auto)",
    )
    g.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "torch", "onnxruntime"],
        help="what runs the model's forward passes (fine-tuning trains with PyTorch): "
        "auto is ONNX Runtime for float32 on CPUs where the onnx extra is installed, "
        "else PyTorch (default: auto)",
    )
    g.add_argument(
        "--layer",
        type=parse_layer,
        default=None,
        metavar="L",
        help="hidden state to pool: -1 the last, 0 the embedding output, i the "
        "output of decoder layer i (Gemma 3 270M has 18), negative from the end, "
        "0.5 the middle of any model; 8-12 (both included), 8,9,10 or 0.45,0.55 averages "
        "those; only the decoder layers up to the deepest one run (embedding "
        "recipes only; default: the recipe's)",
    )
    g.add_argument(
        "--budget",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="count the --max-length tokens with the model's tokenizer while "
        "formatting and give the prompt and each answer their shares of them, so "
        "that a long prompt does not crowd the answers out (--no-budget: a text "
        "longer than --max-length keeps its first tokens; default: on for --recipe "
        "pairwise and finetune, off for embedding and seed)",
    )
    g.add_argument(
        "--recipe",
        choices=list(RECIPES),
        default="pairwise",
        help="pairwise: blend the answers' structure and the difference of their "
        "embeddings (one text per answer), C and weight chosen by cross-validation; "
        "embedding: the embeddings' difference alone; structure: the structure "
        "alone, no model; seed: one text per row and CatBoost, as the reference "
        "notebook; finetune: fine-tune the model with LoRA and a head of one output "
        "per class "
        "(default: pairwise)",
    )
    g.add_argument(
        "--turns",
        choices=["last", "all"],
        default="last",
        help="conversation turns to keep (default: last)",
    )
    g.add_argument(
        "--cache-dir",
        default=str(gemma_pref_home() / "embeddings"),
        metavar="DIR",
        help="on-disk embedding cache (default: %(default)s)",
    )
    g.add_argument("--no-cache", action="store_true", help="do not use the on-disk cache")


def _add_predict_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "model (applied to the loaded pipeline's model step; default: as fitted)"
    )
    g.add_argument(
        "--devices",
        default=None,
        help="'auto', 'cpu', 'cuda:0' or a comma list 'cuda:0,cuda:1' (one replica each)",
    )
    g.add_argument(
        "--quantization",
        choices=["4bit", "8bit", "none"],
        default=None,
        help="bitsandbytes quantization of the base (4bit is NF4; none: full weights)",
    )
    g.add_argument(
        "--dtype",
        default=None,
        choices=["auto", "float32", "bfloat16", "float16"],
        help="weights/compute dtype",
    )
    g.add_argument(
        "--backend",
        default=None,
        choices=["auto", "torch", "onnxruntime"],
        help="what runs the forward passes",
    )
    g.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="texts per forward pass",
    )


def _add_classifier_args(p: argparse.ArgumentParser) -> None:
    from ..pipeline import CLASSIFIER_KINDS

    g = p.add_argument_group("classifier")
    g.add_argument(
        "--classifier",
        choices=list(CLASSIFIER_KINDS),
        default="auto",
        help="classifier on the embeddings (--recipe embedding or seed); auto: the "
        "recipe's (embedding: logreg, seed: catboost) (default: auto)",
    )
    g.add_argument(
        "--iterations",
        type=int,
        default=1000,
        metavar="N",
        help="CatBoost iterations (default: 1000)",
    )
    g.add_argument(
        "--C",
        type=float,
        default=None,
        help="logreg inverse regularisation (default: chosen by "
        "cross-validation on the training rows)",
    )
    g.add_argument(
        "--swap-augment",
        action="store_true",
        help="train on every row and its A/B-swapped twin, and average each "
        "prediction with the swapped one (SwapABClassifier)",
    )
    g = p.add_argument_group("fine-tuning (--recipe finetune)")
    g.add_argument(
        "--epochs", type=int, default=1, metavar="N", help="passes over the rows (default: 1)"
    )
    g.add_argument(
        "--learning-rate",
        type=float,
        default=2e-4,
        metavar="LR",
        help="AdamW peak learning rate (default: 2e-4)",
    )
    g.add_argument("--lora-r", type=int, default=16, metavar="R", help="LoRA rank (default: 16)")
    g.add_argument(
        "--seed", type=int, default=0, help="random seed of the fine-tuning (default: 0)"
    )


_FILE_HELP = ".csv, .parquet or .jsonl/.json in any format read_preferences reads"


def _add_format_arg(p: argparse.ArgumentParser) -> None:
    from ..readers import PREFERENCE_FORMATS
    from ..schema import CELL_FORMATS

    p.add_argument(
        "--format",
        choices=["auto", *PREFERENCE_FORMATS],
        default="auto",
        help="format of the data file: lmsys (Kaggle LMSYS CSV), wsdm (WSDM Cup 2025 "
        "Parquet), lmarena (conversation_a/conversation_b messages), chosen_rejected "
        "(reward-model pairs); auto: detected from the columns (default: auto)",
    )
    p.add_argument(
        "--cell-format",
        choices=list(CELL_FORMATS),
        default="auto",
        help="how the text cells are encoded, one rule for the whole file: json (each "
        "cell a JSON list of turns, or of chosen/rejected messages), text (each cell "
        "one turn of plain text, kept verbatim); auto: the format's own (lmsys: json, "
        "wsdm: text), else the file's, refusing a file that mixes both (default: auto)",
    )


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="gemma-pref",
        description="Predict which of two chatbot answers a person prefers. Reads "
        "the Kaggle LMSYS CSV, the WSDM Cup 2025 Parquet, LMArena conversations and "
        "chosen/rejected pairs; writes the LMSYS or WSDM submission. With no data "
        "arguments, the bundled 715-row sample is used.",
    )
    parser.add_argument("--version", action="version", version=f"gemma-pref {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("fit", help="train a pipeline on labelled rows and save it")
    p.add_argument(
        "--train", metavar="FILE", help=f"training rows, {_FILE_HELP} (default: bundled sample)"
    )
    _add_format_arg(p)
    p.add_argument(
        "--output",
        "-o",
        default=DEFAULT_PIPELINE,
        help="pipeline file to write (default: %(default)s)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    _add_model_args(p)
    _add_classifier_args(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("predict", help="write submission.csv from a saved pipeline")
    p.add_argument(
        "--pipeline",
        default=DEFAULT_PIPELINE,
        help="pipeline file from 'fit' (default: %(default)s)",
    )
    p.add_argument(
        "--test",
        metavar="FILE",
        help=f"test rows, {_FILE_HELP} (default: bundled sample, labels dropped)",
    )
    _add_format_arg(p)
    p.add_argument(
        "--submission-format",
        choices=["auto", "lmsys", "wsdm"],
        default="auto",
        help="lmsys: id,winner_model_a,winner_model_b,winner_tie probabilities; wsdm: "
        "id,winner (model_a or model_b); auto: the competition of the sample submission "
        "or of the test file's format, else lmsys for a model with ties and wsdm for a "
        "two-class model (default: auto)",
    )
    p.add_argument(
        "--positional-ids",
        action="store_true",
        help="the test file has no ids: number its rows 0, 1, 2, ... in file order as "
        "the submission's ids (without it, a test file without ids is refused)",
    )
    p.add_argument(
        "--sample-submission",
        metavar="CSV",
        help="the competition's sample_submission.csv: the submission's rows follow its "
        "ids and order (default: the test file's)",
    )
    p.add_argument(
        "--output",
        "-o",
        help="submission file to write (default: submission.csv; with --engine ray, "
        "the directory 'predictions')",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    _add_predict_model_args(p)
    _add_engine_args(p, "id and the three winner probabilities")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("cv", help="k-fold log loss and accuracy, printed and written as JSON")
    p.add_argument(
        "--train", metavar="FILE", help=f"training rows, {_FILE_HELP} (default: bundled sample)"
    )
    _add_format_arg(p)
    p.add_argument("--folds", type=int, default=5, help="number of folds (default: 5)")
    p.add_argument(
        "--no-group",
        action="store_true",
        help="plain stratified folds (default: grouped by prompt)",
    )
    p.add_argument(
        "--output",
        "-o",
        default="cv.json",
        help="metrics file to write (default: %(default)s); the reliability "
        "diagram and confusion matrix go next to it as "
        "<name>.reliability.png and <name>.confusion.png",
    )
    p.add_argument("--no-plots", action="store_true", help="do not write the PNG plots")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    _add_model_args(p)
    _add_classifier_args(p)
    p.set_defaults(func=cmd_cv)

    p = sub.add_parser("embed", help="embed rows into a .npy matrix")
    p.add_argument(
        "--input", metavar="FILE", help=f"rows to embed, {_FILE_HELP} (default: bundled sample)"
    )
    _add_format_arg(p)
    p.add_argument("--swap", action="store_true", help="exchange response_a and response_b")
    p.add_argument(
        "--output",
        "-o",
        help=".npy file to write (default: embeddings.npy; with --engine ray, the "
        "directory 'embeddings')",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    _add_model_args(p)
    _add_engine_args(p, "id and embedding")
    p.set_defaults(func=cmd_embed)
    _add_cache_command(sub)
    return parser


def _add_cache_command(sub: Any) -> None:
    from ..home_cache import KINDS

    p = sub.add_parser(
        "cache",
        help="list or remove the ONNX exports, converted models and embeddings kept in "
        "the user cache",
        description="The user cache ($GEMMA_PREF_HOME, else ~/.cache/gemma-pref) keeps "
        "ONNX exports, converted models and the command line's embedding cache. Only "
        "what gemma-pref wrote is ever removed.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = actions.add_parser("list", help="each entry with its size on disk, and the total")
    q.add_argument("--kind", choices=list(KINDS), help="only this kind (default: all)")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(func=cmd_cache_list)
    q = actions.add_parser("remove", help="remove entries gemma-pref wrote")
    q.add_argument(
        "keys",
        nargs="*",
        metavar="KEY",
        help="entries to remove, as 'cache list' shows them (KIND/NAME, or a NAME or a "
        "unique prefix of one)",
    )
    q.add_argument("--kind", choices=list(KINDS), help="with --all: only this kind")
    q.add_argument("--all", action="store_true", help="every entry gemma-pref wrote (of --kind)")
    q.add_argument("--yes", "-y", action="store_true", help="do not ask before --all")
    q.set_defaults(func=cmd_cache_remove, parser=q)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("gemma_pref").setLevel(level)
    if args.quiet:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("gemma-pref: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        from ..distributed import root_cause

        cause = root_cause(exc)  # what failed in a Ray worker, not Ray's wrapper
        if isinstance(cause, Exception):
            exc = cause
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, ArenaFormatError):
            message = _as_flags(message)
        if not isinstance(exc, (CLIError, ValueError, OSError, ImportError)):
            message = f"{type(exc).__name__}: {message}"
        print(f"gemma-pref: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
