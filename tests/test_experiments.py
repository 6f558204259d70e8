"""The experiment registry: every experiment runs at smoke size, every committed result validates, the verdict
rule does what its docstring says, and a rerun of a cached seed repeats its value."""
import glob
import json
import math
import os
import statistics
import subprocess

import matplotlib
import pytest
import torch

from peftcourse import data, models, runtime
from peftcourse import experiments as E

matplotlib.use("Agg")
COMMITTED = sorted(p for p in glob.glob(os.path.join(E.RESULTS_DIR, "*.json")) if os.path.basename(p).count(".") == 1)
README = os.path.join(E.ROOT, "README.md")


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def smoke_results():
    """Every registered experiment at smoke size, one seed (a fresh run cache: nothing reused from elsewhere)."""
    E.RUN_CACHE.clear()
    return {name: E.run_experiment(name, [0], "smoke", log=quiet) for name in E.REGISTRY}


def test_registry_holds_the_minilm_claims():
    claims = {exp.claim for exp in E.REGISTRY.values()}
    assert {f"C{i}" for i in range(1, 11)} <= claims   # every claim C1-C10 of docs/evidence.md


@pytest.mark.parametrize("name", sorted(E.REGISTRY))
def test_every_experiment_runs_at_smoke_size(smoke_results, name):
    result = smoke_results[name]
    E.validate_result(result, min_seeds=1)
    settings = E.get(name).config("smoke").get("settings")
    if settings is not None:   # experiments with a settings table measure each of them
        assert list(result["results"]) == list(settings)
    for compared in E.get(name).compare:   # every setting the verdict reads was measured
        assert {compared["a"], compared.get("b", compared["a"])} <= set(result["results"])
    for curve in result.get("curves", {}).values():   # one curve per seed, as long as its steps
        for key, values in curve.items():
            if not key.endswith("steps"):
                steps = curve["loss_steps" if key == "loss" else "eval_steps"]
                assert len(values) == 1 and len(values[0]) == len(steps)
    # exactly the keys, in its order ("curves" only where the experiment records them)
    assert list(result) == [k for k in E.KEYS if k not in E.OPTIONAL_KEYS or k in result]
    assert set(E.KEYS) - set(result) <= set(E.OPTIONAL_KEYS)


def test_same_seed_gives_identical_values_and_curves():
    runs = []
    for _ in range(2):
        E.RUN_CACHE.clear()   # train again, do not reuse the first run
        runs.append(E.run_experiment("lora_targets", [3], "smoke", log=quiet))
    assert runs[0]["results"] == runs[1]["results"]
    assert runs[0]["curves"] == runs[1]["curves"]   # the loss values too, not only the (coarse) accuracy
    E.RUN_CACHE.clear()
    other = E.run_experiment("lora_targets", [4], "smoke", log=quiet)
    assert other["curves"] != runs[0]["curves"]     # and the seed does change the run


def test_reproduce_reruns_a_stored_seed(tmp_path):
    E.RUN_CACHE.clear()
    E.run_experiment("lora_vs_full_ft", [0, 1], "smoke", out_dir=str(tmp_path), log=quiet)
    E.RUN_CACHE.clear()
    rerun = E.reproduce("lora_vs_full_ft", 1, size="smoke", results_dir=str(tmp_path))
    assert set(rerun) == {"full FT", "LoRA (q,v) r=8"}
    assert all(rel <= E.REPRODUCE_TOLERANCE for _, _, rel in rerun.values())
    with pytest.raises(ValueError, match="seed 7 is not among the cached seeds"):
        E.reproduce("lora_vs_full_ft", 7, size="smoke", results_dir=str(tmp_path))


# ---------------------------------------------------------------- the verdict rule (v2: paired, t-intervals, TOST)

WHY = "a sentence from the paper"


def fake(kind, a_values, b_values, margin=0.02):
    comparison = {"better": E.better("A", "B"), "parity": E.parity("A", "B", margin, why=WHY)}[kind]
    return E.judge(comparison, {"A": a_values, "B": b_values}, {}, higher_is_better=True)[0]


def test_better_needs_the_95_percent_interval_of_the_paired_gap_above_zero():
    assert fake("better", [0.90, 0.91, 0.92], [0.80, 0.81, 0.82]) == "reproduced"
    assert fake("better", [0.90, 0.80, 0.85], [0.84, 0.83, 0.85]) == "partly"        # mean ahead, interval reaches 0
    assert fake("better", [0.80, 0.81, 0.82], [0.90, 0.91, 0.92]) == "not reproduced"


def test_pairing_sees_a_consistent_gap_that_separate_means_would_miss():
    # each setting spreads 0.1 over seeds, but a is ahead by 0.01 on every seed: paired, that is clear evidence
    a, b = [0.70, 0.80, 0.90, 0.75, 0.85], [0.69, 0.79, 0.89, 0.74, 0.84]
    assert fake("better", a, b) == "reproduced"
    welch_se = math.sqrt(statistics.variance(a) / 5 + statistics.variance(b) / 5)
    assert 0.01 < 2 * welch_se   # the unpaired rule would have called it inside the spread


def test_parity_is_equivalence_inside_the_margin_not_a_difference_not_found():
    assert fake("parity", [0.90, 0.901, 0.899, 0.902], [0.90, 0.90, 0.90, 0.90]) == "reproduced"
    # a noisy experiment: no difference is detected, but the 90 % interval does not fit inside ±0.02
    assert fake("parity", [0.95, 0.85, 0.93, 0.86], [0.88, 0.90, 0.87, 0.91]) == "partly"
    assert fake("parity", [0.90, 0.91, 0.92], [0.80, 0.81, 0.82]) == "not reproduced"
    # a consistent one-point gap on every seed: inside a 2-point margin, so equivalent; outside a half-point one
    a, b = [0.81, 0.82, 0.83, 0.80, 0.84], [0.80, 0.81, 0.82, 0.79, 0.83]
    assert fake("parity", a, b, margin=0.02) == "reproduced" and fake("parity", a, b, margin=0.005) == "not reproduced"


def test_the_interval_uses_student_t_with_n_minus_1_degrees_of_freedom():
    mean, low, high = E.interval([1.0, 2.0, 3.0, 4.0, 5.0], 0.95)
    assert mean == 3.0 and high - mean == pytest.approx(2.776445 * statistics.stdev([1, 2, 3, 4, 5]) / math.sqrt(5))
    assert E.interval([1.0], 0.95)[1:] == (-math.inf, math.inf)   # one seed: no interval, so never "reproduced"
    assert fake("better", [0.9], [0.1]) == "partly"


def test_only_the_counted_seeds_judge():
    comparison = E.better("A", "B")
    results = {"A": [0.99, 0.80, 0.81, 0.82], "B": [0.10, 0.90, 0.91, 0.92]}   # seed 0 favours A, the rest B
    assert E.judge(comparison, results, {}, True, seeds=[0, 1, 2, 3])[0] == "partly"
    assert E.judge(comparison, results, {}, True, seeds=[0, 1, 2, 3], counted={1, 2, 3})[0] == "not reproduced"


def test_a_parity_margin_needs_a_positive_value_and_its_reason():
    with pytest.raises(ValueError, match="positive number"):
        E.parity("A", "B", 0.0, why=WHY)
    with pytest.raises(ValueError, match="justification"):
        E.parity("A", "B", 0.02, why=" ")


def test_lower_is_better_flips_the_sign():
    comparison = E.better("A", "B")
    assert E.judge(comparison, {"A": [1.0, 1.1, 1.2], "B": [2.0, 2.1, 2.2]}, {}, higher_is_better=False)[0] == "reproduced"


def test_fraction_and_the_combined_verdict():
    exp = E.get("lora_vs_full_ft")
    results = {"full FT": [0.90, 0.91, 0.92, 0.90, 0.91], "LoRA (q,v) r=8": [0.901, 0.909, 0.921, 0.899, 0.911]}
    seeds, counted = [1, 2, 3, 4, 5], {1, 2, 3, 4, 5}
    small = {"trainable_percent": {"LoRA (q,v) r=8": 0.3}}
    large = {"trainable_percent": {"LoRA (q,v) r=8": 3.0}}
    assert E.verdict(exp, results, small, seeds, counted)[0] == "reproduced"
    assert E.verdict(exp, results, large, seeds, counted)[0] == "partly"     # parity holds, the fraction does not
    worse = {"full FT": [0.90, 0.91, 0.92, 0.90, 0.91], "LoRA (q,v) r=8": [0.5, 0.51, 0.52, 0.5, 0.51]}
    verdict, why = E.verdict(exp, worse, large, seeds, counted)
    assert verdict == "not reproduced" and "-0.400" in why and "3.00 %" in why   # the sentence carries the numbers


# ---------------------------------------------------------------- pre-registration and confirmation

DESIGNS = [n for n, e in E.REGISTRY.items() if not e.is_control]


def git(*args):
    return subprocess.run(["git", *args], cwd=E.ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("name", DESIGNS)
def test_every_design_is_registered_with_disjoint_confirmation_seeds(name):
    exp = E.get(name)
    assert len(exp.confirmation_seeds) >= 5 and not set(exp.confirmation_seeds) & set(exp.selection_seeds)
    assert exp.registered_commit and (exp.follow_up_of is None or E.get(exp.follow_up_of).claim == exp.claim)
    assert exp.follow_up_of is None or E.get(exp.follow_up_of).follow_up_of is None   # it follows the first design
    if not git("rev-parse", "--git-dir").returncode and os.path.isfile(E.result_path(name)):
        result = E.load_result(name)
        assert git("cat-file", "-e", exp.registered_commit + "^{commit}").returncode == 0
        # every seed that judges ran after the registration: in a run whose commit descends from it
        added = result.get("confirmation_runs", [])
        later = {s for run in added for s in run["seeds"]}
        runs = [{"seeds": [s for s in result["seeds"] if s not in later], "commit": result["commit"]}] + added
        for run in runs:
            if set(run["seeds"]) & set(result["confirmation_seeds"]):
                assert git("merge-base", "--is-ancestor", exp.registered_commit, run["commit"]).returncode == 0, run


def test_each_claim_has_one_first_design():
    for claim in E.all_claims():
        firsts = [n for n in DESIGNS if E.get(n).claim == claim and not E.get(n).follow_up_of]
        assert len(firsts) == 1, (claim, firsts)


def test_seeds_pair_the_settings_minilm():
    """Seed s gives every MiniLM setting the same head initialisation and the same data order."""
    cfg = E.get("lora_rank").config("smoke")
    heads = []
    for spec in (E.FULL, E.Spec("lora", ["query", "value"], 1, 8)):
        runtime.seed_everything(3)
        model, tok = models.load_minilm(num_labels=8, seed=3)
        heads.append(model.classifier.weight.detach().clone())
        E.build(model, spec)
    assert torch.equal(heads[0], heads[1])
    train_set, _, _ = E.minilm_splits(cfg)
    orders = []
    for _ in range(2):
        torch.manual_seed(len(orders))   # another global RNG state: the order must not depend on it
        batches = data.classification_batches(tok, train_set, batch_size=4, seed=3, max_length=12)
        orders.append([b["labels"].tolist() for b in batches])
    assert orders[0] == orders[1]


def test_confirm_adds_the_missing_seeds_and_judges_again(tmp_path):
    first = E.run_experiment("lora_rank", [0, 1, 2], "full", config=smoke_config("lora_rank"), log=quiet)
    assert first["verdict"] == E.PENDING and first["confirmation_seeds"] == [1, 2, 3, 4, 5]
    E.write_result(first, "full", str(tmp_path), quiet)
    merged = E.confirm("lora_rank", results_dir=str(tmp_path), log=quiet)
    assert merged["seeds"] == [0, 1, 2, 3, 4, 5] and merged["verdict"] != E.PENDING
    assert merged["confirmation_runs"][0]["seeds"] == [3, 4, 5]
    assert len(merged["curves"]["LoRA (q,v) r=1"]["loss"]) == 6
    alone = E.run_experiment("lora_rank", [3], "full", config=smoke_config("lora_rank"), log=quiet)
    assert merged["results"]["LoRA (q,v) r=1"][3] == alone["results"]["LoRA (q,v) r=1"][0]   # seed 3 as run alone
    with pytest.raises(ValueError, match="already stored"):
        E.add_seeds(merged, alone)


def smoke_config(name):
    """A finished config at smoke size (rates fixed), to run 'full-size' bookkeeping on tiny runs."""
    exp = E.get(name)
    config = exp.config("smoke")
    return exp.prepare(config, "smoke", name)[0] if exp.prepare else config


# ---------------------------------------------------------------- committed results

def test_results_exist_for_the_minilm_claims():
    names = {os.path.basename(p)[:-5] for p in COMMITTED}
    assert {"lora_vs_full_ft", "lora_rank", "lora_targets", "adapters_vs_top_layer", "dora_vs_lora"} <= names
    assert {f"C{i}" for i in range(1, 11)} <= {E.get(n).claim for n in names}   # a result file for every claim


@pytest.mark.parametrize("path", COMMITTED, ids=os.path.basename)
def test_committed_result_validates(path):
    with open(path, encoding="utf-8") as f:
        result = json.load(f)
    E.validate_result(result, min_seeds=3)   # keys, registered name, >= 3 seeds, finite values, verdict by the rule
    assert os.path.basename(path) == result["name"] + ".json"
    assert list(result) == [k for k in E.KEYS if k in result]
    if result["claim"] in ("C1", "C2", "C7") and not result["config"].get("lr_from"):   # a control may have 3
        assert len(result["seeds"]) >= 5
    config, full = result["config"], E.get(result["name"]).config("full")
    for key in ("steps", "n_pairs", "n_sentences", "n_train"):   # the cached size, not a class or smoke run
        assert config.get(key) == full.get(key)
    if "lr" not in config:   # no training (C5 measures the pretrained weights)
        assert "lr_sweep" not in full
    elif not isinstance(config["lr"], dict):   # one fixed rate for every setting
        assert config["lr"] == full["lr"] and math.isfinite(config["lr"])
    elif not isinstance(config.get("lr_fixed", {}), dict):   # a TinyGPT control at one shared, registered rate
        assert config["lr_fixed"] == full["lr_fixed"] and set(config["lr"].values()) == {full["lr_fixed"]}
    elif set(config["lr"]) == set(config.get("settings", {})):   # TinyGPT: a rate per setting
        reused = E.load_result(config["lr_from"])["config"]["lr"] if config.get("lr_from") else {}
        for setting, lr in config["lr"].items():   # a control's reused rate, else its sweep's best (lowest) score
            assert lr == reused[setting] if setting in reused else (
                config["lr_sweep"][setting][f"{lr:g}"] == min(config["lr_sweep"][setting].values()))
    else:   # MiniLM: a family's rate is the registered one (lr_fixed), else the one lr_from's sweep chose, else its
        # own sweep's best on validation
        source = E.load_result(config["lr_from"])["config"]["lr"] if config.get("lr_from") else {}
        fixed = config.get("lr_fixed", {})
        assert fixed == full.get("lr_fixed", {})
        for fam, lr in config["lr"].items():
            if fam in fixed:
                assert lr == fixed[fam]
            elif fam in source:
                assert lr == source[fam]
            else:
                sweep = config["lr_sweep"][fam]["val_accuracy"]
                assert sweep[f"{lr:g}"] == max(sweep.values())
    assert "/" not in result["why"] and result["env"]["wall_s"] > 0


def test_validate_rejects_a_wrong_verdict_and_bad_values():
    good = E.run_experiment("lora_rank", [0, 1, 2], "smoke", log=quiet)
    E.validate_result(good, min_seeds=3)
    for change, message in [({"verdict": "reproduced" if good["verdict"] != "reproduced" else "partly"}, "the rule gives"),
                            ({"name": "no_such_experiment"}, "no experiment named"),
                            ({"seeds": [0, 1]}, "one finite value per seed"),
                            ({"results": {"LoRA (q,v) r=1": [0.1, float("nan"), 0.2]}}, "finite")]:
        with pytest.raises((ValueError, KeyError), match=message):
            E.validate_result({**good, **change}, min_seeds=2)
    with pytest.raises(ValueError, match="at least 3 are needed"):
        E.validate_result(E.run_experiment("lora_rank", [0], "smoke", log=quiet), min_seeds=3)
    with pytest.raises(ValueError, match="missing"):
        E.validate_result({k: v for k, v in good.items() if k != "why"})


def test_bad_requests_fail_before_anything_runs():
    with pytest.raises(KeyError, match="registered"):
        E.run_experiment("lora_vs_ful_ft", [0], "smoke")
    with pytest.raises(ValueError, match="distinct"):
        E.run_experiment("lora_rank", [0, 0], "smoke")
    with pytest.raises(ValueError, match="size must be one of"):
        E.run_experiment("lora_rank", [0], "huge")
    with pytest.raises(FileNotFoundError, match="run `python -m peftcourse.experiments run"):
        E.load_result("lora_rank", size="smoke", results_dir="/nonexistent")


def test_readme_table_is_the_generated_one():
    if not COMMITTED:
        pytest.skip("no committed results yet")
    with open(README, encoding="utf-8") as f:
        text = f.read()
    assert E.results_table() in text and E.claims_table() in text and E.tally() in text
    with open(os.path.join(E.ROOT, "docs", "teaching.md"), encoding="utf-8") as f:
        assert E.tally() in f.read()   # the teaching guide prints the same generated lines


def test_claims_table_shows_first_design_best_follow_up_and_controls(tmp_path):
    names = ("lora_rank", "lora_rank_pooler_long", "lora_rank_pooler")
    verdicts = {}
    for name in names:
        if not os.path.isfile(E.result_path(name)):
            pytest.skip("no committed results yet")
        result = E.load_result(name)
        verdicts[name] = result["verdict"]
        with open(tmp_path / f"{name}.json", "w", encoding="utf-8") as f:
            json.dump(result, f)
    table = E.claims_table(results_dir=str(tmp_path)).splitlines()
    assert len(table) == 3   # header, rule, one claim: only claims with a result file get a row
    claim, first, follow_up, controls = [cell.strip() for cell in table[2].strip("|").split("|")]
    assert claim == "C2"
    assert first == f"`lora_rank`: {verdicts['lora_rank']}"
    assert follow_up == f"`lora_rank_pooler_long`: {verdicts['lora_rank_pooler_long']}"
    assert controls == f"`lora_rank_pooler`: {verdicts['lora_rank_pooler']}"
    assert E.is_control("lora_rank_pooler") and not E.is_control("lora_rank")
    # the tally names first designs and follow-ups apart; a control never counts for its claim
    lines = E.tally(results_dir=str(tmp_path)).splitlines()
    assert f"{verdicts['lora_rank']} C2" in lines[0] and f"{verdicts['lora_rank_pooler_long']} C2" in lines[1]
    assert "lora_rank_pooler" not in E.tally(results_dir=str(tmp_path))


def test_plots_draw_the_band_and_the_students_run(smoke_results):
    result = smoke_results["adapters_vs_top_layer"]
    ax = E.plot_curves(result, student=result)
    labels = [line.get_label() for line in ax.get_lines()]
    assert "adapter b=64 (1 seeds)" in labels and "adapter b=64: your run" in labels
    ax = E.plot_summary(result, student=result)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(result["results"])


def test_one_line_and_the_summary_grid_read_the_cached_results():
    names = ["lora_rank", "lora_rank_pooler", "lora_rank_pooler_long"]
    result = E.load_result(names[2])
    line = E.one_line(result)
    counted = E.counted_values(result)
    n = len(next(iter(counted.values())))
    assert line.startswith(f"lora_rank_pooler_long ({result['config']['steps']} steps, {n} confirmation seeds)")
    assert line.endswith(f"→ {result['verdict']}")
    assert all(f"{s} {E.summary(v)[0]:.3f}" in line for s, v in counted.items())
    fig = E.plot_summaries(names, ncols=2)   # three results on a 2 x 2 grid: the fourth panel hidden
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == [f"{n}: {E.load_result(n)['verdict']}" for n in names]
    assert len(fig.axes) == 4
    fig.canvas.draw()   # every shown panel keeps its numbers, although the x axis is shared
    assert all(any(t.get_visible() and t.get_text() for t in ax.get_xticklabels()) for ax in shown)


def test_minilm_sbora_has_its_own_rate_family_and_fewer_trainable_weights(smoke_results):
    config = smoke_results["sbora_vs_lora_minilm"]["config"]
    assert set(config["lr"]) == {"LoRA", "SBoRA-FA"}
    assert config["trainable_percent"]["SBoRA-FA (q,v) r=4 + pooler"] < config["trainable_percent"]["LoRA (q,v) r=4 + pooler"]


def test_command_line_lists_every_experiment(capsys):
    assert E.main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in E.REGISTRY)


def test_class_size_is_smoke_in_fast_mode(monkeypatch):
    monkeypatch.setenv("PEFTCOURSE_FAST", "1")
    assert E.class_size() == "smoke"
    monkeypatch.setenv("PEFTCOURSE_FAST", "0")
    monkeypatch.delenv("CI", raising=False)
    assert E.class_size() == "class"


def test_describe_prints_the_cached_numbers(capsys):
    if not COMMITTED:
        pytest.skip("no committed results yet")
    result = E.load_result(os.path.basename(COMMITTED[0])[:-5])
    E.describe(result)
    out = capsys.readouterr().out
    assert out.startswith(f"{result['claim']} (") and f"verdict: {result['verdict']}." in out
    for setting, values in E.counted_values(result).items():   # each setting's mean over the seeds the verdict counts
        assert f"{setting}" in out and f"{E.summary(values)[0]:.3f}" in out
    assert "paired gap" in out and "seed by seed" in out   # the evidence itself, one gap per confirmation seed
    counted = [s for s in result["confirmation_seeds"] if s in result["seeds"]]
    assert all(f"{s}: " in out.split("seed by seed: ")[1] for s in counted)


def test_plot_gaps_draws_the_gaps_the_verdict_reads():
    result = E.load_result("lora_rank")
    ax = E.plot_gaps(result)
    counted = [s for s in result["confirmation_seeds"] if s in result["seeds"]]
    verdict, _, gaps = E.judge(E.get("lora_rank").compare[0], result["results"], result["config"], True,
                               result["seeds"], set(counted))
    xs = sorted(float(x) for c in ax.collections for x, _ in c.get_offsets() if len(c.get_offsets()) == len(counted))
    assert xs == pytest.approx(sorted(gaps.values()))   # one dot per confirmation seed, at its paired gap
    assert ax.get_title() == f"lora_rank (parity): {verdict}"
    with pytest.raises(ValueError, match="comparison must be an index"):
        E.plot_gaps(result, comparison=3)


def test_show_evidence_describes_and_draws_one_panel_per_comparison(capsys, monkeypatch):
    import matplotlib.pyplot as plt
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(plt.gcf()))
    result = E.show_evidence("lora_rank_smollm2")
    assert result == E.load_result("lora_rank_smollm2")
    assert f"verdict: {result['verdict']}." in capsys.readouterr().out
    titles = [ax.get_title() for ax in shown[0].axes]
    pairs = [c for c in E.get("lora_rank_smollm2").compare if c["kind"] != "fraction"]
    assert len(shown) == 1 and len(titles) == len(pairs) == 2
    assert titles[0].startswith("lora_rank_smollm2 (parity): ") and titles[1].startswith("lora_rank_smollm2 (better): ")
    plt.close("all")


def test_plot_summaries_gives_a_setting_one_colour_on_every_panel():
    import matplotlib.pyplot as plt
    from matplotlib.collections import PathCollection
    names = ["lora_vs_full_ft_smollm2", "lora_rank_smollm2", "qlora_vs_lora_smollm2", "dora_vs_lora_smollm2"]
    fig = E.plot_summaries(names)
    colours = {}   # setting -> the colours of its seed dots, over all panels
    for ax in fig.axes[:len(names)]:
        labels = [t.get_text() for t in ax.get_yticklabels()]
        for dots in (c for c in ax.collections if isinstance(c, PathCollection)):
            row = round(float(dots.get_offsets()[0][1]) - 0.15)
            colours.setdefault(labels[row], set()).add(tuple(dots.get_facecolor()[0][:3]))
    plt.close(fig)
    assert len(colours["zero-shot"]) == 1 and len(colours["LoRA (q,v) r=8"]) == 1   # on four and three panels
    assert all(len(c) == 1 for c in colours.values()), colours
    assert len({next(iter(c)) for c in colours.values()}) == len(colours)   # and no two settings share one


def test_tinygpt_experiments_record_what_they_claim(smoke_results):
    sbora = smoke_results["sbora_vs_lora"]["config"]
    assert sbora["touched_columns"]["SBoRA-FA r=4"] == 4            # ΔW touches r input columns (SBoRA §3)
    assert sbora["touched_columns"]["LoRA r=4"] > 4
    assert sbora["trainable"]["SBoRA-FA r=4"] < 0.6 * sbora["trainable"]["LoRA r=4"]
    uuid = smoke_results["mora_vs_lora_uuid"]["config"]
    assert abs(uuid["trainable"]["MoRA r=8"] / uuid["trainable"]["LoRA r=8"] - 1) < 0.01   # equal budgets
    targets = smoke_results["lora_targets_tinygpt"]["config"]["trainable"]   # W_q at r=8 = (W_q, W_v) at r=4
    assert targets["LoRA (q) r=8"] == targets["LoRA (q,v) r=4"] == 4 * 2 * 192 * 8
    share = smoke_results["adapters_vs_top_layer_tinygpt"]["config"]["trainable_percent"]
    assert share["full FT"] == 100 and share["adapter b=16"] < 5 < share["top-layer (last block)"]
    assert set(uuid["generations"]["MoRA r=8"]) == {"prompt", "answer", "before", "after"}
    bits = smoke_results["four_bit_formats"]["config"]["constant_bits_per_weight"]
    assert bits["NF4"] == 0.5 and abs(bits["NF4 + DQ"] - 0.127) < 0.002   # QLoRA §3: 0.5 -> 0.127 bits


def test_multi_sbora_task_feature_regions_are_disjoint_at_lora_budget(smoke_results):
    result = smoke_results["multi_sbora_task_features"]
    config = result["config"]
    assert config["ranks"] == {"LoRA": 4, "SBoRA-FA": 7}   # 7 · Σ out = 4 · Σ (in + out) over TinyGPT's layers
    regions = E.task_feature_regions(config, 0)
    assert len(regions) == len(E.TASK_OPS) and len(regions[0]) == 4 * 4   # four adapted layers in four blocks
    for layer, own in regions[0].items():
        assert len(own) == 7 and not set(own.tolist()) & set(regions[1][layer].tolist())
    for kind in E.TASK_FEATURE_KINDS:   # every kind's controls are measured beside its interference
        assert {f"cross-talk: {kind}", f"update size: {kind}"} <= set(result["results"])


def test_tiny_sweep_extends_the_grid_while_the_best_rate_is_at_its_edge():
    tried = []

    def sweep(best_lr):
        tried.clear()
        config = {"settings": {"a": {}}, "lr_sweep": "run"}

        def score(setting, lr):
            tried.append(lr)
            return (math.log(lr) - math.log(best_lr)) ** 2
        return E.tiny_sweep(config, "unused", score)

    assert sweep(0.03)["lr"]["a"] == pytest.approx(0.03)           # past the grid's top: one step up finds it
    assert tried == [3e-3, 1e-2, 0.03, 0.09]                          # and one more shows it is a minimum
    assert sweep(5e-3)["lr"]["a"] == 3e-3 and tried == [3e-3, 1e-2, 1e-3]   # smallest rate best: one step down
    config = sweep(1e6)                                               # still at the edge: at most two extensions
    assert len(tried) == len(E.TINY_LR_SWEEP) + E.TINY_LR_EXTEND and config["lr"]["a"] == max(tried)
    assert list(config["lr_sweep"]["a"]) == [f"{lr:g}" for lr in sorted(tried)]   # every tried rate recorded


def test_the_command_line_caps_kernels_only_on_x86_and_only_once():
    capped = dict(E.PORTABLE_KERNELS)
    assert E.needs_portable_kernels(environ={}, machine="x86_64")                 # a fresh x86 run restarts capped
    assert not E.needs_portable_kernels(environ=capped, machine="x86_64")         # ... once: then it runs
    assert not E.needs_portable_kernels(environ={}, machine="aarch64")            # other CPUs keep their kernels
    assert not E.needs_portable_kernels(environ={"PEFTCOURSE_NATIVE_KERNELS": "1"}, machine="x86_64")   # opt-out
    partly = {**capped, "MKL_ENABLE_INSTRUCTIONS": "AVX512"}
    assert E.needs_portable_kernels(environ=partly, machine="AMD64")              # every library capped, not some


def test_minilm_prepare_sweeps_only_the_families_without_a_fixed_rate(monkeypatch):
    swept = []

    def fake_finetune(spec, lr, seed, cfg):
        swept.append((E.FAMILY[spec.method], lr))
        return {"val": lr, "wall_s": 0.0}   # the largest rate scores best
    monkeypatch.setattr(E.minilm, "finetune", fake_finetune)
    settings = {"full FT": E.FULL, "adapter b=4": E.adapter(4)}
    config, _ = E.minilm_prepare({"settings": settings, "lr_fixed": {"full FT": 5e-5}}, "full", "unused")
    assert config["lr"] == {"full FT": 5e-5, "adapter": max(E.LR_SWEEP["adapter"])}
    assert {fam for fam, _ in swept} == {"adapter"}                 # the fixed family is never swept
    assert list(config["lr_sweep"]) == ["adapter"]
    swept.clear()
    class_size, _ = E.minilm_prepare({"settings": settings, "lr_fixed": {"full FT": 5e-5}}, "class", "unused")
    assert class_size["lr"]["full FT"] == 5e-5 and not swept      # smaller sizes take the fixed rate too
