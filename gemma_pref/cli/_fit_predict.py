# SPDX-License-Identifier: Apache-2.0
"""``gemma-pref fit``, ``predict`` and ``cv``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._common import CLIError, say, summary_line
from ._outputs import check_output, write_atomically
from ._params import build_pipeline, override_model_params
from ._ray import predict_on_ray
from ._rows import has_labels, read_rows
from ._submission import plan_submission, submission_classes, write_planned_submission


def cmd_fit(args: argparse.Namespace) -> int:
    import gemma_pref as gp
    from gemma_pref.evaluation import preference_scores

    out = check_output(args.output, args.overwrite, "joblib", args)
    df, source = read_rows(args, args.train, labels=True, what="training")
    y = gp.data.labels_from_winner(df)
    pipe = build_pipeline(args)
    say(f"fit: {len(df)} rows from {source}")
    start = time.perf_counter()
    pipe.fit(df, y)
    seconds = time.perf_counter() - start
    gp.save(pipe, out, overwrite=args.overwrite)  # atomic; records the library versions
    proba = pipe.predict_proba(df)
    train = preference_scores(y, proba, submission_classes(pipe, proba))
    summary_line(
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
        return predict_on_ray(args, pipeline_path)
    out = check_output(args.output or "submission.csv", args.overwrite, "submission", args)
    df, source = read_rows(args, args.test, labels=False, what="test")
    pipe = gp.load(pipeline_path)  # warns when saved by other versions
    override_model_params(args, pipe)
    classes = submission_classes(pipe, None)
    plan = plan_submission(args, df, classes)  # before the long part
    say(f"predict: {len(df)} rows from {source}")
    start = time.perf_counter()
    proba = pipe.predict_proba(df)
    seconds = time.perf_counter() - start
    classes = submission_classes(pipe, proba)
    extra = f"; wrote {write_planned_submission(plan, proba, classes, out)}"
    if has_labels(df):
        s = preference_scores(gp.data.labels_from_winner(df), proba, classes)
        extra = f"; log loss {s['log_loss']:.4f}, accuracy {s['accuracy']:.3f}" + extra
    summary_line("predict", len(df), seconds, extra, pipe)
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
    from gemma_pref.evaluation import cross_validate_preference
    from gemma_pref.evaluation.cross_validation import cv_splits

    out = check_output(args.output, args.overwrite, "cv", args)
    stem = out.with_suffix("") if out.suffix == ".json" else out
    plots = (
        []
        if args.no_plots
        else [
            check_output(stem.with_name(stem.name + suffix), args.overwrite, "png", args)
            for suffix in (".reliability.png", ".confusion.png")
        ]
    )
    df, source = read_rows(args, args.train, labels=True, what="training")
    y = gp.data.labels_from_winner(df)
    pipe = build_pipeline(args)
    grouped = not args.no_group
    if args.folds < 2:
        raise CLIError(f"--folds must be at least 2, got {args.folds}")
    splits = cv_splits(df, y, folds=args.folds, grouped=grouped, random_state=0)
    say(
        f"cv: {len(df)} rows from {source}; {args.folds} folds"
        f"{', grouped by prompt' if grouped else ''}"
    )

    def on_fold(fold: Any, model: Any) -> None:
        say(f"  fold {fold.fold}: log loss {fold.log_loss:.4f}, accuracy {fold.accuracy:.3f}")

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
    write_atomically(out, lambda tmp: tmp.write_text(json.dumps(report, indent=2, default=str)))
    if plots:
        from ..evaluation.plots import save_cv_plots

        title = (
            f"{args.folds}-fold CV, {len(df)} rows: log loss {report['oof']['log_loss']:.4f}, "
            f"accuracy {report['oof']['accuracy']:.3f}"
        )
        save_cv_plots(y, result.oof, stem, title=title)
        say(f"wrote {plots[0]} and {plots[1]}")
    say(
        f"cv log loss {report['log_loss']:.4f} +/- {report['log_loss_std']:.4f}, "
        f"accuracy {report['accuracy']:.3f} (class prior: log loss "
        f"{report['class_prior_log_loss']:.4f})"
    )
    if len(result.classes) == 2:
        say(
            "two classes (model_a, model_b; no tie): the WSDM Cup 2025 scores accuracy "
            f"(class prior: accuracy {report['class_prior_accuracy']:.3f})"
        )
    summary_line("cv", len(df), result.seconds, f"; wrote {out}", pipe)
    return 0
