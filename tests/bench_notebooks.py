"""Benchmark: each notebook's wall time and peak resident memory (kernel and its children), top to bottom.

    python tests/bench_notebooks.py                         # every notebook, full budget, outputs discarded
    python tests/bench_notebooks.py notebooks/01_*.ipynb    # some of them
    python tests/bench_notebooks.py --fast                  # the smoke sizes CI runs
    python tests/bench_notebooks.py --write                 # also store the executed notebooks (refresh outputs)
    python tests/bench_notebooks.py --json times.json       # also write the figures as JSON

Binder kills a kernel above 2 GB, and JupyterLab's server needs ~100-250 MB of it, so the course's
target is a peak of <= 1.5 GB per notebook (a fresh kernel each: shut a notebook's kernel down before
opening the next). Memory is sampled every 50 ms as the summed RSS of all processes this script
started (the kernel and anything it spawns), so a short spike between samples can be missed.
Not a test: pytest does not collect it.
"""
import argparse
import glob
import json
import os
import sys
import threading
import time

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT_MB = 1536


class PeakRSS:
    """Samples the summed resident memory of this process's children in a background thread."""

    def __init__(self, interval=0.05):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:  # a child that ended between listing and reading
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_notebook(path, fast=False, write=False, timeout=900):
    """Execute one notebook in a fresh kernel; returns {"notebook", "wall_s", "peak_mb", "cells"}."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}})
    before = os.environ.get("PEFTCOURSE_FAST")
    os.environ["PEFTCOURSE_FAST"] = "1" if fast else "0"   # the kernel inherits it; "0" wins over CI=true
    t0 = time.perf_counter()
    try:
        with PeakRSS() as mem:
            client.execute()
    finally:
        os.environ.pop("PEFTCOURSE_FAST") if before is None else os.environ.update(PEFTCOURSE_FAST=before)
    result = {"notebook": os.path.basename(path), "wall_s": round(time.perf_counter() - t0, 1),
              "peak_mb": round(mem.peak / 2**20), "cells": len(nb.cells), "mode": "fast" if fast else "full"}
    if write:
        nbformat.write(nb, path)
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", help="default: notebooks/*.ipynb")
    ap.add_argument("--fast", action="store_true", help="smoke sizes (PEFTCOURSE_FAST=1), as in CI")
    ap.add_argument("--write", action="store_true", help="store the executed notebooks with their outputs")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    paths = args.notebooks or sorted(glob.glob(os.path.join(ROOT, "notebooks", "[0-9][0-9]_*.ipynb")))
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        ap.error(f"no such notebook: {', '.join(missing)}")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    results = []
    print(f"{'notebook':<36} {'mode':<5} {'wall':>8} {'peak RSS':>10}")
    for path in paths:
        r = run_notebook(path, fast=args.fast, write=args.write)
        flag = "" if r["peak_mb"] <= LIMIT_MB else f"  over the {LIMIT_MB} MB target"
        print(f"{r['notebook']:<36} {r['mode']:<5} {r['wall_s']:>7.0f}s {r['peak_mb']:>7,} MB{flag}", flush=True)
        results.append(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if all(r["peak_mb"] <= LIMIT_MB for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
