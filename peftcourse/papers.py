"""The papers' published numbers that the notebooks compare against, in one place.

Each table is data (tuples and dicts) plus a function that prints it in the layout of the paper,
so that a notebook can put it next to what it measured. Sources are given with every table.
"""

# The paper's Table 2 (lecture: "Performance of MoRA"): character accuracy (%) of memorizing 10k UUID
# pairs with LLaMA-2 7B after 300, 500, 700 and 900 training steps. Rows: (method, rank, accuracies).
MORA_UUID_STEPS = (300, 500, 700, 900)
MORA_UUID_TABLE = (
    ("FFT", "-", (42.5, 100, 100, 100)),
    ("LoRA", 8, (9.9, 10.0, 10.7, 54.2)),
    ("MoRA", 8, (10.1, 15.7, 87.4, 100)),
    ("LoRA", 256, (9.9, 70.6, 100, 100)),
    ("MoRA", 256, (41.6, 100, 100, 100)),
)


def mora_uuid_table():
    """The paper's Table 2 as text, for printing next to mora.accuracy_table()."""
    lines = ["paper (LLaMA-2 7B, 10k pairs): character accuracy (%) after ... steps",
             f"{'method':<8}{'rank':>6}{'':>12}" + "".join(f"{s:>8}" for s in MORA_UUID_STEPS)]
    for method, rank, values in MORA_UUID_TABLE:
        lines.append(f"{method:<8}{rank!s:>6}{'':>12}" + "".join(f"{v:>8.1f}" for v in values))
    return "\n".join(lines)


# The lecture's tables (SBoRA: Commonsense / Arithmetic Reasoning Performance): average accuracy (%) and
# trainable parameters per (model, rank), method -> (TP, average). GPT-3.5 (no fine-tuning): 77.0 / 70.4.
SBORA_METHODS = ("LoRA", "DoRA", "SBoRA-FA", "SBoRA-FB")
# (task, model, rank, then (trainable parameters, average %) for each of SBORA_METHODS)
SBORA_ROWS = (
    ("commonsense reasoning", "LLaMA-7B", 32, ("56.1M", 72.8), ("57.0M", 71.7), ("28.0M", 71.7), ("28.0M", 64.9)),
    ("commonsense reasoning", "LLaMA-7B", 64, ("112.2M", 73.5), ("113.1M", 72.7), ("56.1M", 75.7), ("56.1M", 71.0)),
    ("commonsense reasoning", "LLaMA3-8B", 32, ("56.6M", 83.2), ("57.4M", 84.2), ("25.2M", 84.4), ("31.5M", 83.0)),
    ("commonsense reasoning", "LLaMA3-8B", 64, ("113.2M", 84.3), ("114.0M", 82.1), ("50.3M", 84.9), ("62.9M", 81.8)),
    ("arithmetic reasoning", "LLaMA-7B", 32, ("56.1M", 59.3), ("57.0M", 59.1), ("28.0M", 58.9), ("28.0M", 56.1)),
    ("arithmetic reasoning", "LLaMA-7B", 64, ("112.2M", 59.9), ("113.1M", 61.1), ("56.1M", 61.9), ("56.1M", 56.9)),
    ("arithmetic reasoning", "LLaMA3-8B", 32, ("56.6M", 66.1), ("57.4M", 74.0), ("25.2M", 76.8), ("31.5M", 74.2)),
    ("arithmetic reasoning", "LLaMA3-8B", 64, ("113.2M", 71.8), ("114.0M", 72.5), ("50.3M", 76.0), ("62.9M", 69.8)),
)
SBORA_AVERAGES = {}  # task -> (model, rank) -> method -> (trainable parameters, average %)
for task, model, rank, *cells in SBORA_ROWS:
    SBORA_AVERAGES.setdefault(task, {})[(model, rank)] = dict(zip(SBORA_METHODS, cells))


def sbora_averages_table():
    """The lecture's SBoRA averages as text: one line per task, model and rank."""
    methods = SBORA_METHODS
    lines = ["paper (lecture tables): average accuracy % (trainable parameters)",
             f"{'task':<22}{'model':<10}{'r':>3}" + "".join(f"{m:>17}" for m in methods)]
    for task, rows in SBORA_AVERAGES.items():
        for (model, rank), row in rows.items():
            lines.append(f"{task:<22}{model:<10}{rank:>3}" +
                         "".join(f"{row[m][1]:>8.1f} ({row[m][0]:>6})" for m in methods))
    return "\n".join(lines)
