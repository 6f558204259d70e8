"""Experiments as code: each lecture claim (C1-C11, listed in docs/evidence.md) as a registered experiment with
several seeds, a cached full-size result in data/results/NAME.json, and a rule that says whether the paper's
finding was reproduced.

    python -m peftcourse.experiments list                                # every experiment and its last run
    python -m peftcourse.experiments run lora_vs_full_ft --seeds 0 1 2 3 4 --size full
    python -m peftcourse.experiments run lora_vs_full_ft --size class    # ≤ 2 min on a CPU: what a student reruns
    python -m peftcourse.experiments check lora_vs_full_ft --seed 0      # rerun one cached seed, compare (≤ 2 %)
    python -m peftcourse.experiments table                               # the README's table of results

    from peftcourse import experiments as E
    result = E.load_result("lora_vs_full_ft")     # in a notebook: the cached numbers, instantly
    E.plot_curves(result, student=E.rerun("lora_vs_full_ft"))   # the seeds' band, a student's class-size run over it

Sizes: "smoke" (tests, seconds), "class" (one seed in ≤ 2 min on a 2-core CPU, the cached run's learning
rates), "full" (the cached result: learning-rate sweep, then every seed). The verdict rule is in verdict.py.

The package: registry (Experiment, experiment(), Spec: one setting), verdict (the rule), store (running,
storing, validating, reproducing), the runners per model (minilm, tinygpt, merging, quantization, smollm2), the
registrations per kind of claim (claims_encoder, claims_generative, claims_quantization, claims_smollm2: imported here, in
this order, which is the registry's order), report and plots (reading results), cli (the command line).

Adding an experiment: write fn(config, seed) -> {"metric": {setting: value}, "curves": {setting: {...}}, ...}
(registry.experiment says what else it may return) with the package's own pieces, register it with
experiment(name, claim=..., question=..., paper=..., metric=..., higher_is_better=..., sizes={"smoke": ...,
"class": ..., "full": ...}, compare=[better(...), parity(...)], prepare=...) in a claims module, and give it a
prepare(config, size, name) -> (config, runs) when it needs a sweep. A curve key ending in "steps" holds the x
values. In a notebook: mine = run_experiment(name, [0], "class") (nothing written), then
plot_curves(name, student=mine).
"""
from . import minilm, tinygpt, merging, quantization, smollm2   # noqa: F401 (the runner modules, e.g. for monkeypatching)
from . import claims_encoder, claims_generative, claims_quantization, claims_smollm2   # noqa: F401 (they fill REGISTRY, in this order)
from .cli import PORTABLE_KERNELS, last_run, main, needs_portable_kernels
from .merging import (TASK_FEATURE_KINDS, TASK_OPS, cross_talk, merge_prepare, merged_tasks, relative_update,
                      sbora_rank_at_lora_budget, single_task_loss, task_feature_regions, task_model)
from .minilm import (FAMILY, HEAD_LR, LR_SWEEP, MINILM_DATA, RUN_CACHE, SWEEP_SPEC, build, finetune, load_run_cache,
                     minilm_experiment, minilm_labels, minilm_prepare, minilm_sizes, minilm_splits, run_key,
                     run_minilm, with_head_lr)
from .plots import plot_curves, plot_gaps, plot_summaries, plot_summary, show_evidence
from .quantization import FORMAT_SETTINGS, embed, round_trip
from .registry import (FULL, REGISTRY, SIZES, TOP_LAYER, Experiment, Spec, adapter, experiment, get,
                       pooled)
from .report import (TABLE_END, TABLE_START, all_claims, best_follow_up, claim_results, claims_table, class_size,
                     describe, gap_lines, is_control, one_line, rerun, results_table, tally, write_readme_table)
from .store import (ENV_KEYS, KEYS, OPTIONAL_KEYS, PENDING, REPRODUCE_TOLERANCE, RESULTS_DIR, ROOT, add_seeds,
                    check_seeds, confirm, counted_values, device_name, git_commit, judge_result, judged_seeds,
                    load_result, reproduce, result_path, run_experiment, stamp, validate_result, write_result)
from .tinygpt import (DOMAIN_BLOCK, GPT2_TARGETS, TINY_LR_EXTEND, TINY_LR_SWEEP, adapt_to_domain, arithmetic_prepare,
                      arithmetic_split, domain_prepare, fresh_tinygpt, learn_arithmetic, memorize_uuids, run_record,
                      tiny_sweep, tinygpt_runs, tinygpt_with, touched_columns, uuid_prepare, with_settings)
from .verdict import (BETTER_LEVEL, PARITY_LEVEL, VERDICTS, better, combine, fraction, interval, judge, paired_gaps,
                      parity, summary, verdict)
