"""Device failures, out-of-memory back-off and parameter validation.

Faults are injected into the real tiny Gemma-2 replicas with forward pre-hooks:
the hook raises the exception a broken GPU would (a real
``torch.cuda.OutOfMemoryError``, a ``RuntimeError``) from inside the model's
forward call, so the whole engine path (batching, threads, back-off, error
wrapping) runs as it does on a GPU.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from gemma_pref import (
    ArenaStructureFeatures,
    ArenaTextFormatter,
    GemmaEmbedder,
    SwapABClassifier,
    make_preference_pipeline,
)
from gemma_pref.backend.devices import run_on_devices
from gemma_pref.data import labels_from_winner
from gemma_pref.exceptions import DeviceWorkerError

EMBEDDER_DEFAULTS = {"memory_cache": False}


def _texts(arena_texts, n):
    return [str(t) for t in arena_texts[:n]]


def _no_worker_threads():
    return not [t for t in threading.enumerate() if t.name.startswith("gemma-pref-")]


# ----------------------------------------------------------- device failures
def test_failing_device_stops_the_healthy_worker_early(make_embedder, tiny_gemma, arena_texts):
    texts = _texts(arena_texts, 40)
    emb = make_embedder(devices=["cpu", "cpu"], batch_size=1)  # 40 batches
    models = emb.load()
    failed = threading.Event()
    failing_thread: list[threading.Thread] = []
    healthy_rows: list[int] = []

    def broken(module, args, kwargs):
        failing_thread.append(threading.current_thread())
        failed.set()
        raise RuntimeError("replica 2 lost its device")

    def healthy(module, args, kwargs):
        healthy_rows.append(int(kwargs["input_ids"].shape[0]))
        if len(healthy_rows) == 1:
            # hold the first batch until the broken worker has died, so that
            # the stop signal is certainly set when this batch finishes
            failed.wait(60)
            if failing_thread:
                failing_thread[0].join(60)

    hooks = [
        models[0].register_forward_pre_hook(healthy, with_kwargs=True),
        models[1].register_forward_pre_hook(broken, with_kwargs=True),
    ]
    try:
        with pytest.raises(DeviceWorkerError) as info:
            emb.transform(texts)
    finally:
        for h in hooks:
            h.remove()
    message = str(info.value)
    assert "device 'cpu' (worker 2 of 2)" in message
    assert "RuntimeError: replica 2 lost its device" in message
    assert info.value.device == "cpu"
    assert isinstance(info.value.__cause__, RuntimeError)
    # the healthy worker finished the batch it held, then stopped: it did not
    # go on through the 38 batches left in the queue
    assert len(healthy_rows) <= 1
    assert _no_worker_threads()


def test_two_failing_devices_are_both_named(make_embedder, tiny_gemma, arena_texts):
    emb = make_embedder(devices=["cpu", "cpu"], batch_size=1)
    models = emb.load()
    both_inside = threading.Barrier(2)

    def fail(name):
        def hook(module, args, kwargs):
            both_inside.wait(60)  # both replicas are in forward at once
            raise ValueError(f"{name} failed")

        return hook

    hooks = [
        m.register_forward_pre_hook(fail(f"replica {i + 1}"), with_kwargs=True)
        for i, m in enumerate(models)
    ]
    try:
        with pytest.raises(DeviceWorkerError, match="also failed: device 'cpu'") as info:
            emb.transform(_texts(arena_texts, 10))
    finally:
        for h in hooks:
            h.remove()
    assert "replica 1 failed" in str(info.value) and "replica 2 failed" in str(info.value)
    assert _no_worker_threads()


def test_run_on_devices_stops_and_joins_without_a_model():
    done: list[int] = []
    failed = threading.Event()
    failing_thread: list[threading.Thread] = []

    def work(device, task):
        if device == 1:
            failing_thread.append(threading.current_thread())
            failed.set()
            raise KeyError(f"task {task}")
        failed.wait(60)  # hold the task until device 1 has failed and died
        if failing_thread:
            failing_thread[0].join(60)
        done.append(task)

    with pytest.raises(
        DeviceWorkerError, match=r"device 'cuda:1' \(worker 2 of 2\): KeyError"
    ) as info:
        run_on_devices(["cuda:0", "cuda:1"], list(range(1000)), work)
    assert info.value.device == "cuda:1"
    assert len(done) <= 1  # device 0 stopped after the task it held
    assert _no_worker_threads()


def test_finished_batches_are_cached_before_a_failure(
    make_embedder, tiny_gemma, arena_texts, tmp_path
):
    """A run that dies halfway resumes from the cache instead of starting over."""
    texts = _texts(arena_texts, 20)
    emb = make_embedder(batch_size=4, cache_dir=tmp_path)
    model = emb.load()[0]
    rows: list[int] = []

    def fail_third_batch(module, args, kwargs):
        rows.append(int(kwargs["input_ids"].shape[0]))
        if len(rows) == 3:
            raise RuntimeError("the GPU fell off the bus")

    handle = model.register_forward_pre_hook(fail_third_batch, with_kwargs=True)
    try:
        with pytest.raises(DeviceWorkerError, match="fell off the bus"):
            emb.transform(texts)
    finally:
        handle.remove()
    assert rows == [4, 4, 4]

    counted: list[int] = []
    handle = model.register_forward_pre_hook(
        lambda m, a, k: counted.append(int(k["input_ids"].shape[0])), with_kwargs=True
    )
    try:
        resumed = emb.transform(texts)
    finally:
        handle.remove()
    assert sum(counted) == 12  # the first two batches came from the cache
    fresh = make_embedder(batch_size=4).transform(texts)
    np.testing.assert_allclose(resumed, fresh, atol=1e-5)


# ------------------------------------------------------------ out of memory
def _oom_hook(max_rows=None, max_tokens=None):
    """Pre-hook raising a real CUDA out-of-memory error on too large batches."""
    shapes: list[tuple[int, int]] = []

    def hook(module, args, kwargs):
        n, width = kwargs["input_ids"].shape
        shapes.append((int(n), int(width)))
        if (max_rows is not None and n > max_rows) or (
            max_tokens is not None and n * width > max_tokens
        ):
            raise torch.cuda.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.11 GiB total capacity)"
            )

    return hook, shapes


def test_oom_halves_the_batch_and_matches_an_unsplit_run(
    make_embedder, tiny_gemma, arena_texts, caplog
):
    texts = _texts(arena_texts, 40)
    ref = make_embedder(batch_size=16).transform(texts)
    emb = make_embedder(batch_size=16)
    model = emb.load()[0]
    hook, shapes = _oom_hook(max_rows=3)
    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with caplog.at_level(logging.WARNING, logger="gemma_pref"):
            X = emb.transform(texts)
    finally:
        handle.remove()
    np.testing.assert_allclose(X, ref, atol=1e-5)
    # The first batch of 16 (texts cut at 64 tokens) is halved down to pairs:
    # it fails as 16, 8, 4, 4, 8, 4, 4. The cap it leaves (2 rows x 64 tokens)
    # cuts the next two batches (16 and 8 rows) into pairs before they fail.
    assert [n for n, _ in shapes if n > 3] == [16, 8, 4, 4, 8, 4, 4]
    assert sum(n for n, _ in shapes if n <= 3) == 40  # each row once
    assert "Out of memory on cpu with 16 rows x 64 tokens" in caplog.text


def test_oom_on_padded_tokens_with_token_budget(make_embedder, tiny_gemma, arena_texts):
    texts = _texts(arena_texts, 30)
    ref = make_embedder(batch_size=1, padding="max_length").transform(texts)
    emb = make_embedder(batch_size=30, padding="max_length")
    model = emb.load()[0]
    hook, shapes = _oom_hook(max_tokens=5 * 64)  # at most 5 rows of 64 tokens fit
    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        X = emb.transform(texts)
    finally:
        handle.remove()
    np.testing.assert_allclose(X, ref, atol=1e-5)
    assert all(width == 64 for _, width in shapes)
    ok = [n for n, _ in shapes if n * 64 <= 5 * 64]
    assert sum(ok) == 30  # every row went through exactly once


def test_oom_on_a_single_row_raises_a_clear_error(make_embedder, tiny_gemma):
    emb = make_embedder(batch_size=8)
    model = emb.load()[0]
    hook, shapes = _oom_hook(max_rows=0)
    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with pytest.raises(DeviceWorkerError) as info:
            emb.transform(["one text", "two texts", "three"])
    finally:
        handle.remove()
    message = str(info.value)
    assert "device 'cpu'" in message and info.value.device == "cpu"
    assert "a single text of" in message and "tokens" in message
    assert "max_length" in message and "quantization='4bit'" in message
    cause = info.value.__cause__
    assert isinstance(cause, torch.cuda.OutOfMemoryError)
    assert isinstance(cause.__cause__, torch.cuda.OutOfMemoryError)  # the original
    assert [n for n, _ in shapes] == [3, 2, 1]  # halved down to one row, then gave up


def test_other_errors_are_not_retried(make_embedder, tiny_gemma):
    emb = make_embedder(batch_size=8)
    model = emb.load()[0]
    calls: list[int] = []

    def broken(module, args, kwargs):
        calls.append(1)
        raise RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED")

    handle = model.register_forward_pre_hook(broken, with_kwargs=True)
    try:
        with pytest.raises(DeviceWorkerError, match="CUBLAS_STATUS_EXECUTION_FAILED"):
            emb.transform(["a", "b", "c", "d"])
    finally:
        handle.remove()
    assert len(calls) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_real_cuda_oom_backs_off_and_matches(tiny_gemma, arena_texts, caplog):
    """A real allocator failure: cap this process's GPU memory, then embed."""
    long_texts = [" ".join(_texts(arena_texts, 60)[i : i + 30]) for i in range(24)]
    common = {
        "max_length": 2048,
        "devices": "cuda:0",
        "memory_cache": False,
        "dtype": "float32",
        "model_kwargs": {"attn_implementation": "eager"},
    }
    ref = GemmaEmbedder(tiny_gemma, batch_size=1, **common).transform(long_texts)
    emb = GemmaEmbedder(tiny_gemma, batch_size=24, **common)
    emb.transform(["load the model first"])
    torch.cuda.synchronize()
    total = torch.cuda.get_device_properties(0).total_memory
    # eager attention of 24 x 4 heads x 2048^2 float32 needs ~1.5 GiB per layer
    torch.cuda.empty_cache()
    used = torch.cuda.memory_reserved(0)
    torch.cuda.set_per_process_memory_fraction(min(1.0, (used + 600 * 2**20) / total), 0)
    try:
        with caplog.at_level(logging.WARNING, logger="gemma_pref"):
            X = emb.transform(long_texts)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
        torch.cuda.empty_cache()
    assert "Out of memory on cuda:0 with 24 rows" in caplog.text
    np.testing.assert_allclose(X, ref, rtol=1e-4, atol=1e-3)


# ------------------------------------------------------- parameter validation
_ARENA_ROWS = pd.DataFrame(
    {
        "prompt": ['["Hi"]', '["Why?"]', '["What?"]', '["How?"]'],
        "response_a": ['["Hello"]', '["Because"]', '["This"]', '["So"]'],
        "response_b": ['["Hey"]', '["No idea"]', '["That"]', '["Thus"]'],
    }
)


def _fit(est, tiny_gemma):
    if isinstance(est, GemmaEmbedder):
        est.fit(["x"])
        return est.transform(["x"])
    if isinstance(est, SwapABClassifier):
        return est.fit(_ARENA_ROWS, [0, 1, 2, 0])
    return est.fit(_ARENA_ROWS).transform(_ARENA_ROWS)


# (estimator factory, bad parameters, message: parameter, bad value, allowed values)
_BAD_PARAMS = [
    (
        lambda p: ArenaTextFormatter(),
        {"turns": "every"},
        r"'turns' parameter of ArenaTextFormatter must be a str among \{.*'last'.*\}\. Got 'every'",
    ),
    (
        lambda p: ArenaTextFormatter(),
        {"max_tokens": 0},
        r"'max_tokens' parameter of ArenaTextFormatter must be an int in the range \[1, inf\) or None\. Got 0",
    ),
    (
        lambda p: ArenaTextFormatter(),
        {"template": "{question}"},
        r"'template' parameter of ArenaTextFormatter may only use the fields \{prompt\}, \{response_a\}, \{response_b\}; got \['question'\]",
    ),
    (
        lambda p: ArenaTextFormatter(),
        {"template": "{0}"},
        r"'template' parameter of ArenaTextFormatter must use named fields .*positional field in '\{0\}'",
    ),
    (
        lambda p: ArenaTextFormatter(),
        {"swap": "yes"},
        r"'swap' parameter of ArenaTextFormatter must be an instance of 'bool'.*Got 'yes'",
    ),
    (
        lambda p: ArenaTextFormatter(max_tokens=8),
        {"tokenizer": "/no/such/tokenizer"},
        r"'tokenizer' parameter of ArenaTextFormatter is '/no/such/tokenizer', from which no tokenizer can be loaded: expected a local directory",
    ),
    (
        lambda p: ArenaStructureFeatures(),
        {"turns": "first"},
        r"'turns' parameter of ArenaStructureFeatures must be a str among \{.*'all'.*\}\. Got 'first'",
    ),
    (
        lambda p: SwapABClassifier(make_pipeline(ArenaStructureFeatures(), LogisticRegression())),
        {"augment": "no"},
        r"'augment' parameter of SwapABClassifier must be an instance of 'bool'.*Got 'no'",
    ),
    (
        lambda p: SwapABClassifier(LogisticRegression()),
        {"estimator": ArenaStructureFeatures()},
        r"'estimator' parameter of SwapABClassifier must be an object implementing 'fit' and 'predict_proba'\. Got ArenaStructureFeatures\(\)",
    ),
    (
        lambda p: GemmaEmbedder(p),
        {"quantization": "3bit"},
        r"'quantization' parameter of GemmaEmbedder must be a str among \{.*'4bit'.*\} or None\. Got '3bit'",
    ),
    (
        lambda p: GemmaEmbedder(p),
        {"pooling": "max2"},
        r"'pooling' parameter of GemmaEmbedder must be a str among \{.*'mean'.*\}\. Got 'max2'",
    ),
    (
        lambda p: GemmaEmbedder(p),
        {"batch_size": 0},
        r"'batch_size' parameter of GemmaEmbedder must be an int in the range \[1, inf\)\. Got 0",
    ),
    (
        lambda p: GemmaEmbedder(p),
        {"devices": ["cuda:7"]},
        r"'devices' parameter of GemmaEmbedder names a device that is not visible: device 'cuda:7' requested but only \d+ CUDA devices? (is|are) visible; allowed here: 'auto', 'cpu'",
    ),
    (
        lambda p: GemmaEmbedder(p),
        {"devices": "gpu"},
        r"'devices' parameter of GemmaEmbedder has an unknown device 'gpu'; expected 'auto', 'cpu', 'cuda' or 'cuda:N'",
    ),
    (
        lambda p: GemmaEmbedder(p),
        {"devices": [0]},
        r"'devices' parameter of GemmaEmbedder must list device names such as 'cpu' or 'cuda:0'; got 0 in \[0\]",
    ),
    (
        lambda p: GemmaEmbedder(p),
        {"dtype": "fp8"},
        r"'dtype' parameter of GemmaEmbedder must be a str among \{.*'bfloat16'.*\} or a torch.dtype\. Got 'fp8'",
    ),
    (
        lambda p: GemmaEmbedder(p),
        {"memory_cache": "yes"},
        r"'memory_cache' parameter of GemmaEmbedder must be an instance of 'bool'.*Got 'yes'",
    ),
    (
        lambda p: GemmaEmbedder(p),
        {"cache_dir": __file__},
        r"'cache_dir' parameter of GemmaEmbedder must be a directory \(created if missing\); got '.*test_robustness.py', which is a file",
    ),
]


@pytest.mark.parametrize(
    ("factory", "bad", "match"), _BAD_PARAMS, ids=[str(b) for _, b, _ in _BAD_PARAMS]
)
def test_bad_parameters_fail_at_fit_not_at_set_params(tiny_gemma, factory, bad, match):
    if "cuda:7" in str(bad) and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    est = factory(tiny_gemma)
    est.set_params(**bad)  # sklearn: set_params stores, fit validates
    assert est.get_params()[next(iter(bad))] == next(iter(bad.values()))
    with pytest.raises(ValueError, match=match):
        _fit(est, tiny_gemma)


def test_bad_embedder_parameters_also_fail_at_transform(make_embedder, tiny_gemma):
    emb = make_embedder()
    emb.transform(["works"])
    emb.set_params(pooling="max2")
    with pytest.raises(ValueError, match=r"'pooling' parameter of GemmaEmbedder .*Got 'max2'"):
        emb.transform(["works"])


def test_pipeline_set_params_fails_at_fit_naming_the_step_parameter(tiny_gemma, arena):
    df = arena.head(12)
    pipe = make_preference_pipeline(
        tiny_gemma,
        recipe="embedding",
        max_length=32,
        dtype="float32",
        classifier=LogisticRegression(),
    )
    pipe.set_params(embedder__pooling="max2", formatter__turns="every")
    with pytest.raises(ValueError, match="'turns' parameter of ArenaTextFormatter"):
        pipe.fit(df, labels_from_winner(df))
    pipe.set_params(formatter__turns="all")
    with pytest.raises(ValueError, match=r"'pooling' parameter of GemmaEmbedder.*'max2'"):
        pipe.fit(df, labels_from_winner(df))


def test_template_callable_returning_non_str_names_parameter_and_row():
    fmt = ArenaTextFormatter(template=lambda p, a, b: None)
    with pytest.raises(
        TypeError,
        match=r"'template' callable .* must return a str; got NoneType at row 0",
    ):
        fmt.fit_transform(_ARENA_ROWS)
