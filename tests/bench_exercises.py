"""Benchmark: how long each exercise's checker or measurement takes (a student waits for it after every try).

    python tests/bench_exercises.py [--limit 2.0]

Prints each exercise's CPU and wall time, slowest first, after the two shared models the checkers reuse are
built (the model loads aside, as in a notebook). CPU time is the figure that matters: on a busy machine wall time
grows with the load, CPU time does not. Exits 1 when an exercise takes more CPU seconds than --limit.
"""
import argparse
import sys
import time

from peftcourse import exercises as E


def time_exercises():
    """[(exercise id, CPU seconds, wall seconds)] for every exercise, slowest CPU first."""
    E.module("12").tinygpt_counts()   # the shared models, built once as the notebooks do
    E.module("04").tiny_gpt2()
    rows = []
    for ex in E.EXERCISES.values():
        cpu, wall = time.process_time(), time.perf_counter()
        if ex.kind == "code":
            ex.cases()
        elif ex.kind == "predict":
            ex.measure()
        else:
            ex.expected()
        rows.append((ex.id, time.process_time() - cpu, time.perf_counter() - wall))
    return sorted(rows, key=lambda row: -row[1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=float, default=2.0, help="CPU seconds an exercise may take (default 2)")
    args = ap.parse_args(argv)
    rows = time_exercises()
    print(f"{'exercise':28} {'CPU s':>7} {'wall s':>7}")
    for ex_id, cpu, wall in rows:
        print(f"{ex_id:28} {cpu:7.2f} {wall:7.2f}")
    slow = [ex_id for ex_id, cpu, _ in rows if cpu > args.limit]
    print(f"{len(rows)} exercises; over {args.limit} CPU s: {', '.join(slow) or 'none'}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
