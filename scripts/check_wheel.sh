#!/usr/bin/env bash
# Build the sdist and the wheel, install the wheel into a fresh virtual
# environment, and run the quick example from the installed package (not the
# source tree): proves that `pip install gemma-pref` works.
#
#   scripts/check_wheel.sh [python]      # default python: python3
set -euo pipefail
PY=${1:-python3}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PY" -m venv "$work/build-env"
"$work/build-env/bin/pip" install -q build
"$work/build-env/bin/python" -m build --sdist --wheel --outdir "$work/dist" . >/dev/null
ls -l "$work/dist"
wheel=$(ls "$work"/dist/gemma_pref-*.whl)
# list to a file first: `unzip | grep -q` under pipefail dies of SIGPIPE
unzip -l "$wheel" > "$work/wheel-files.txt"
grep -q "gemma_pref/data/arena_sample.csv" "$work/wheel-files.txt"
grep -q "gemma_pref/py.typed" "$work/wheel-files.txt"

"$PY" -m venv "$work/env"
# the CPU build of torch on machines of this kind (see README)
"$work/env/bin/pip" install -q torch==2.13.0
"$work/env/bin/pip" install -q "$wheel"
cd "$work"   # away from the source tree: import the installed package
"$work/env/bin/python" - <<'PY'
import tempfile

import numpy as np

import gemma_pref as gp
from gemma_pref.testing import make_tiny_gemma

assert "site-packages" in gp.__file__, gp.__file__
model = make_tiny_gemma(tempfile.mkdtemp())
df = gp.load_arena_sample()
y = gp.labels_from_winner(df)
pipe = gp.make_preference_pipeline(model, max_length=64)  # the default recipe, the blend
pipe.fit(df.head(200), y[:200])
assert set(pipe.weights_) == {"structure", "embedding"}
proba = pipe.predict_proba(df.tail(20))
assert proba.shape == (20, 3) and np.allclose(proba.sum(axis=1), 1)
gp.write_submission(df["id"].tail(20), proba, "submission.csv")
df.head(120).to_parquet("train.parquet")  # Parquet reads on the base install (pyarrow)
print("wheel OK:", gp.__version__, gp.__file__)
PY
"$work/env/bin/gemma-pref" -q cv --recipe structure --train train.parquet --format lmsys \
    --folds 2 --no-plots -o cv.json
"$work/env/bin/gemma-pref" --version
