"""Benchmark: each notebook's wall time and peak resident memory (kernel and its children), top to bottom.

    python tests/bench_notebooks.py                         # every notebook, full budget, outputs discarded
    python tests/bench_notebooks.py notebooks/01_*.ipynb    # some of them
    python tests/bench_notebooks.py --fast                  # the smoke sizes CI runs
    python tests/bench_notebooks.py --write                 # also store the executed notebooks (refresh outputs)
    python tests/bench_notebooks.py --json times.json       # also write the figures as JSON
    python tests/bench_notebooks.py --write --record        # refresh every notebook and record its figures in
                                                            # data/notebook_bench.json, the source of the timing
                                                            # figures in README.md and docs/teaching.md
    python tools/timing_figures.py --write                  # then write those figures into the docs

Binder kills a kernel above 2 GB, and JupyterLab's server needs ~100-250 MB of it, so the course's
target is a peak of <= 1.5 GB per notebook (a fresh kernel each: shut a notebook's kernel down before
opening the next). Memory is sampled every 50 ms as the summed RSS of all processes this script
started (the kernel and anything it spawns), so a short spike between samples can be missed.
Not a test: pytest does not collect it.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import sys
import threading
import time

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT_MB = 1536
RECORD = os.path.join(ROOT, "data", "notebook_bench.json")


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
    """Execute one notebook in a fresh kernel.

    Returns {"notebook", "mode", "wall_s", "peak_mb", "cells", "cell_s", "load"}: cell_s maps each code
    cell's id to its run time in seconds (from the execution timestamps nbclient records in the cell's
    metadata, which --write stores too); load is the 1-minute load average before and after.
    """
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}})
    before = os.environ.get("PEFTCOURSE_FAST")
    os.environ["PEFTCOURSE_FAST"] = "1" if fast else "0"   # the kernel inherits it; "0" wins over CI=true
    load = [round(os.getloadavg()[0], 1)]
    t0 = time.perf_counter()
    try:
        with PeakRSS() as mem:
            client.execute()
    finally:
        os.environ.pop("PEFTCOURSE_FAST") if before is None else os.environ.update(PEFTCOURSE_FAST=before)
    wall = time.perf_counter() - t0
    load.append(round(os.getloadavg()[0], 1))
    result = {"notebook": os.path.basename(path), "mode": "fast" if fast else "full", "wall_s": round(wall, 1),
              "peak_mb": round(mem.peak / 2**20), "cells": len(nb.cells), "cell_s": cell_seconds(nb), "load": load}
    if write:
        nbformat.write(nb, path)
    return result


def cell_seconds(nb):
    """{cell id: seconds} for every executed code cell, from its execution timestamps."""
    out = {}
    for cell in nb.cells:
        stamps = cell.metadata.get("execution", {})
        if cell.cell_type == "code" and "iopub.execute_input" in stamps and "shell.execute_reply" in stamps:
            start, end = (datetime.datetime.fromisoformat(stamps[k].replace("Z", "+00:00"))
                          for k in ("iopub.execute_input", "shell.execute_reply"))
            out[cell.id] = round((end - start).total_seconds(), 1)
    return out


def machine():
    """The CPU the figures were measured on: its model, the CPUs this process may use, the torch threads."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model, "cpus": cpus, "gpu": gpu_name()}


def gpu_name():
    try:
        import torch
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:   # no torch, or a broken CUDA setup: the notebooks then run on the CPU
        return None


def record(results, path=RECORD):
    """Merge full-run results into the record (one entry per notebook, the latest run wins) and write it."""
    if any(r["mode"] != "full" for r in results):
        raise ValueError("only full runs are recorded: fast-mode times say nothing about a class (drop --fast)")
    data = {"notebooks": {}}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    stamp = {"date": datetime.date.today().isoformat(), "machine": machine()}
    for r in results:
        data["notebooks"][r["notebook"]] = {**{k: v for k, v in r.items() if k != "notebook"}, **stamp}
    data["notebooks"] = dict(sorted(data["notebooks"].items()))
    with open(path, "w") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", help="default: notebooks/*.ipynb")
    ap.add_argument("--fast", action="store_true", help="smoke sizes (PEFTCOURSE_FAST=1), as in CI")
    ap.add_argument("--write", action="store_true", help="store the executed notebooks with their outputs")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--record", action="store_true",
                    help=f"merge the results into {os.path.relpath(RECORD, ROOT)} (full runs only), "
                         "which tools/timing_figures.py writes into README.md and docs/teaching.md")
    args = ap.parse_args(argv)
    paths = args.notebooks or sorted(glob.glob(os.path.join(ROOT, "notebooks", "[0-9][0-9]_*.ipynb")))
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        ap.error(f"no such notebook: {', '.join(missing)}")
    if args.record and args.fast:
        ap.error("--record keeps full-run figures only: fast-mode times say nothing about a class")
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
    if args.record:
        record(results)
        print(f"recorded in {os.path.relpath(RECORD, ROOT)}; now: python tools/timing_figures.py --write")
    return 0 if all(r["peak_mb"] <= LIMIT_MB for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
