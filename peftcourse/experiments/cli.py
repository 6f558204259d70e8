"""The command line, `python -m peftcourse.experiments list|run|confirm|check|rejudge|table` (__main__.py runs
main() on portable CPU kernels): every experiment and its last run, running, confirming and checking them,
judging every stored result again under the current rule, the README's table."""
import argparse
import json
import os
import sys

from .minilm import load_run_cache
from .registry import REGISTRY, SIZES, get
from .report import results_table, write_readme_table
from .store import (REPRODUCE_TOLERANCE, RESULTS_DIR, confirm, load_result, reproduce, result_path, run_experiment,
                    in_seed_order, stamp, write_result)


def last_run(name):
    path = result_path(name)
    if not os.path.isfile(path):
        return "not run"
    try:
        r = load_result(name)
    except ValueError as err:
        return f"invalid result file: {err}"
    return (f"{r['verdict']}, {len(r['seeds'])} seeds, {r['env']['wall_s'] / 60:.1f} min on {r['env']['device']} "
            f"({r['env']['threads']} threads), commit {r['commit'][:10]}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m peftcourse.experiments", description=sys.modules[__package__].__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every registered experiment with its last full-size run")
    run = sub.add_parser("run", help="run experiments and write data/results/NAME[.size].json")
    run.add_argument("names", nargs="+", metavar="NAME")
    run.add_argument("--seeds", nargs="+", type=int, default=[0])
    run.add_argument("--size", choices=SIZES, default="class")
    run.add_argument("--cache", help="a JSON-lines file of finished runs to reuse between processes (full-size runs)")
    conf = sub.add_parser("confirm", help="run a design's registered confirmation seeds missing from its stored "
                                          "result and add them (or --seeds for a control)")
    conf.add_argument("names", nargs="+", metavar="NAME")
    conf.add_argument("--seeds", nargs="+", type=int, default=None)
    conf.add_argument("--cache", help="as for run")
    sub.add_parser("rejudge", help="judge every stored full-size result again under the current rule and registration")
    check = sub.add_parser("check", help="rerun one cached seed with the cached config; fail beyond 2 %%")
    check.add_argument("name")
    check.add_argument("--seed", type=int, default=0)
    table = sub.add_parser("table", help="the README's table of the committed results")
    table.add_argument("--write", action="store_true", help="write it into README.md between its markers")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, exp in REGISTRY.items():
            print(f"{exp.claim:<4} {name:<24} {last_run(name)}\n     {exp.question}")
    elif args.command == "run":
        for name in args.names:
            get(name)   # every name checked before anything runs
        if args.cache:
            load_run_cache(args.cache)
        for name in args.names:
            run_experiment(name, args.seeds, args.size, out_dir=RESULTS_DIR)
    elif args.command == "confirm":
        for name in args.names:
            get(name)
        if args.cache:
            load_run_cache(args.cache)
        for name in args.names:
            confirm(name, args.seeds)
    elif args.command == "rejudge":
        rejudge()
    elif args.command == "check":
        worst = 0.0
        for setting, (old, new, rel) in reproduce(args.name, args.seed).items():
            print(f"{setting:<34} cached {old:.4f}  rerun {new:.4f}  difference {100 * rel:.2f} %")
            worst = max(worst, rel)
        print("reproduced within 2 %" if worst <= REPRODUCE_TOLERANCE else "NOT within 2 %")
        return 0 if worst <= REPRODUCE_TOLERANCE else 1
    elif args.command == "table":
        print(results_table())
        if args.write:
            write_readme_table()
    return 0


def rejudge(results_dir=RESULTS_DIR, log=print):
    """Judge every stored full-size result again from its per-seed values (the rule or a registration changed)."""
    for name, exp in REGISTRY.items():
        path = result_path(name, "full", results_dir)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
            write_result(stamp(exp, in_seed_order(raw)), "full", results_dir, log)


# x86 CPUs with AVX-512 round some kernels differently from AVX2-only ones, and a run near the edge of its stable
# learning rate (C8's LoRA at 1e-2) turns that rounding into another result (0.824 vs 0.656 for one seed). The command
# line therefore caps torch's, oneDNN's and MKL's kernels at AVX2 (nothing changes on an AVX2 CPU), so a cached seed
# repeats on either kind of CPU. PEFTCOURSE_NATIVE_KERNELS=1 runs on the CPU's own kernels instead.
PORTABLE_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def needs_portable_kernels(environ=os.environ, machine=None):
    """True where this process should restart with PORTABLE_KERNELS: an x86 CPU, not capped yet, not opted out."""
    import platform
    return ((machine or platform.machine()).lower() in ("x86_64", "amd64")
            and any(environ.get(k) != v for k, v in PORTABLE_KERNELS.items())
            and environ.get("PEFTCOURSE_NATIVE_KERNELS") != "1")
