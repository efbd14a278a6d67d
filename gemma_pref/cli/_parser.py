# SPDX-License-Identifier: Apache-2.0
"""The argument parser: the commands, their option groups and their help."""

from __future__ import annotations

import argparse
from typing import Any

from ._cache import cmd_cache_list, cmd_cache_remove
from ._embed import cmd_embed
from ._fit_predict import cmd_cv, cmd_fit, cmd_predict
from ._params import parse_layer

DEFAULT_PIPELINE = "gemma-pref-pipeline.joblib"


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


def _add_model_args(p: argparse.ArgumentParser) -> None:
    from ..backend.default_model import gemma_pref_home
    from ..pipeline.recipes import RECIPES

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
    from ..pipeline.recipes import CLASSIFIER_KINDS

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
    from ..data.readers import PREFERENCE_FORMATS
    from ..data.schema import CELL_FORMATS

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
    from ..backend.home_cache import KINDS

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
