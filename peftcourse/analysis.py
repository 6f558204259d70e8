"""What did fine-tuning change in a weight matrix? DoRA's magnitude/direction analysis, ΔW spectra and sparsity.

Every function takes weights in PyTorch's nn.Linear layout (out_features x in_features);
`merged_weight(layer)` gives that layout for nn.Linear, GPT-2's Conv1D and any adapter layer.
"""
import statistics
import time

import numpy as np
import torch
from torch import nn

from . import validate
from .base import AdapterLayer, conv1d_class
from .plots import new_axes, color as method_color
from .runtime import model_mode
from .train import compute_loss


def _check_matrix(name, w):
    validate.tensor(name, w, floating=False)
    if w.dim() != 2:
        raise ValueError(f"{name} must be a 2-D weight matrix (out_features x in_features), got shape {tuple(w.shape)}")
    if w.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(w.shape)})")


def magnitude_direction_change(W0, Wt):
    """(ΔD, ΔM) between a pre-trained W0 and a fine-tuned Wt: DoRA paper §3.2, Eq. (3)-(4).

    The paper writes W ∈ R^{d×k} with one norm per column; PyTorch stores the same matrix as
    (out, in), so here it is one norm per OUTPUT ROW (one vector per output neuron):
        ΔM = mean over rows |‖Wt_n‖ − ‖W0_n‖|        (magnitude change)
        ΔD = mean over rows (1 − cos(Wt_n, W0_n))     (direction change)
    For a DoRA layer ‖Wt_n‖ = m_n, so the merged weight gives the paper's ΔM directly.
    """
    _check_matrix("W0", W0)
    _check_matrix("Wt", Wt)
    if W0.shape != Wt.shape:
        raise ValueError(f"W0 {tuple(W0.shape)} and Wt {tuple(Wt.shape)} must have the same shape")
    W0, Wt = W0.detach().double(), Wt.detach().double()  # 1 − cos of tiny updates cancels badly in fp32
    n0, nt = W0.norm(dim=1), Wt.norm(dim=1)
    zero = torch.nonzero((n0 == 0) | (nt == 0)).flatten().tolist()
    if zero:
        raise ValueError(f"rows {zero[:5]} of W0 or Wt are all zero: a zero vector has no direction, so ΔD is undefined")
    cos = (W0 * Wt).sum(dim=1) / (n0 * nt)
    return (1 - cos).mean().item(), (nt - n0).abs().mean().item()


def merged_weight(layer):
    """The weight a layer applies now, (out, in): W0 + ΔW for an adapter layer, the weight itself otherwise."""
    if isinstance(layer, AdapterLayer):
        w = layer.base_weight()
        return w if layer.merged else w + layer.delta_weight().to(w.dtype)
    if isinstance(layer, nn.Linear):
        return layer.weight
    if isinstance(layer, conv1d_class()):
        return layer.weight.T  # Conv1D stores (in, out)
    raise TypeError(f"merged_weight needs nn.Linear, Conv1D or an adapter layer, got {type(layer).__name__}")


@torch.no_grad()
def weight_snapshot(model, names):
    """{name: a copy of the layer's current (out, in) weight}: one checkpoint of the §3.2 analysis."""
    if isinstance(names, str) or not names:
        raise ValueError(f"names must be a non-empty list of layer names, got {names!r}")
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"the model has no layers {missing[:3]}; its linear layers are e.g. "
                         f"{[n for n, m in modules.items() if isinstance(m, (nn.Linear, AdapterLayer))][:4]}")
    return {n: merged_weight(model.get_submodule(n)).detach().float().cpu().clone() for n in names}


def layer_changes(first, later, row_groups=None):
    """{layer: (ΔD, ΔM)} between two weight_snapshots.

    row_groups={"q": slice(0, d), "v": slice(2 * d, 3 * d)} splits a fused matrix such as GPT-2's
    c_attn (rows q | k | v in (out, in) layout) into the query and value matrices the paper analyses.
    """
    if not isinstance(first, dict) or not isinstance(later, dict) or not first:
        raise TypeError("first and later must be weight_snapshot() dicts {name: weight}")
    if row_groups is not None and (not isinstance(row_groups, dict) or not row_groups):
        raise TypeError(f"row_groups must be a non-empty {{name: slice}} dict or None, got {row_groups!r}")
    missing = sorted(set(first) - set(later))
    if missing:
        raise ValueError(f"the later snapshot lacks layers {missing[:3]}: snapshot the same names")
    out = {}
    for name, W0 in first.items():
        for group, rows in (row_groups or {"": slice(None)}).items():
            key = f"{name}.{group}" if group else name
            out[key] = magnitude_direction_change(W0[rows], later[name][rows])
    return out


class ChangeTracker:
    """Records {layer: (ΔD, ΔM)} since its creation at every call: pass it inside train()'s eval_fn
    to get the paper's §3.2 checkpoints. Returns the means over layers as metrics."""

    def __init__(self, model, names, row_groups=None):
        self.names, self.row_groups = list(names), row_groups
        self.first = weight_snapshot(model, self.names)
        self.records = []

    def __call__(self, model):
        changes = layer_changes(self.first, weight_snapshot(model, self.names), self.row_groups)
        self.records.append(changes)
        dd, dm = zip(*changes.values())
        return {"ΔD": float(np.mean(dd)), "ΔM": float(np.mean(dm))}

    def by_step(self, history):
        """{step: {layer: (ΔD, ΔM)}}, matching the records to the steps of train()'s evals."""
        steps = [e["step"] for e in history.evals]
        if len(steps) != len(self.records):
            raise ValueError(f"{len(self.records)} records but {len(steps)} evals: call the tracker once per eval")
        return dict(zip(steps, self.records))


def plot_decomposition(W, title="", rows=48, splits=(), axes=None):
    """W = m · V/‖V‖ for one layer: m per output row, row vs column norms, and a patch of the unit directions.

    splits: output rows where a fused matrix changes part (GPT-2's c_attn: q | k | v at d and 2d)."""
    _check_matrix("W", W)
    validate.positive_int("rows", rows)
    W = W.detach().float().cpu()
    m = W.norm(dim=1)
    direction = W / m.clamp_min(torch.finfo(W.dtype).tiny)[:, None]
    if axes is None:
        _, axes = new_axes(3, width=13, height=3.4)
    axes[0].plot(m.numpy(), lw=1, color=method_color("DoRA"))
    for row in splits:
        axes[0].axvline(row, color="black", ls="--", lw=0.8)
    axes[0].set(title=f"{title} magnitude m (one per output row)", xlabel="output row", ylabel="‖W row‖")
    axes[1].hist(m.numpy(), bins=30, alpha=0.7, label=f"rows (out={W.shape[0]}): DoRA's m")
    axes[1].hist(W.norm(dim=0).numpy(), bins=30, alpha=0.7, label=f"columns (in={W.shape[1]})")
    axes[1].set(title="row norms vs column norms", xlabel="norm")
    axes[1].legend(fontsize=7)
    n = min(rows, *W.shape)
    lim = direction[:n, :n].abs().max().item()
    im = axes[2].imshow(direction[:n, :n].numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[2].set(title=f"direction V/‖V‖ (first {n}×{n})", xlabel="input", ylabel="output row")
    axes[2].grid(False)
    axes[2].figure.colorbar(im, ax=axes[2], fraction=0.046)
    return axes


def regression(x, y):
    """(slope, Pearson correlation) of a least-squares line y ≈ slope·x + b."""
    try:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        raise TypeError("x and y must be sequences of numbers") from None
    if x.ndim != 1 or x.size < 3 or x.shape != y.shape:
        raise ValueError(f"need at least 3 matching (x, y) points, got {x.size} and {y.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite: a NaN or Inf point would make the slope and correlation NaN")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise ValueError("x or y is constant: a correlation is undefined (0/0)")
    slope = np.polyfit(x, y, 1)[0]
    return float(slope), float(np.corrcoef(x, y)[0, 1])


def plot_direction_magnitude(changes, label, ax=None):
    """The paper's Fig. 2: ΔD (x) against ΔM (y), one point per layer and checkpoint, with the regression line.

    changes: {checkpoint step: {layer: (ΔD, ΔM)}}. Marker shape = checkpoint. Returns (slope, correlation).
    """
    if not isinstance(changes, dict) or not changes:
        raise ValueError("changes must be a non-empty {step: {layer: (ΔD, ΔM)}} dict (ChangeTracker.by_step)")
    if ax is None:
        _, ax = new_axes()
    markers = "o^sDvP*X"
    xs, ys = [], []
    for i, (step, layers) in enumerate(sorted(changes.items())):
        dd, dm = zip(*layers.values())
        xs += dd
        ys += dm
        ax.scatter(dd, dm, marker=markers[i % len(markers)], s=28, alpha=0.8,
                   color=method_color(label), label=f"step {step}")
    slope, corr = regression(xs, ys)
    line = np.linspace(min(xs), max(xs), 2)
    ax.plot(line, np.polyval(np.polyfit(xs, ys, 1), line), color="black", lw=1)
    ax.set_title(f"{label}: slope {slope:.3g}, corr {corr:+.2f}")
    ax.set_xlabel("ΔD (direction change)")
    ax.set_ylabel("ΔM (magnitude change)")
    ax.ticklabel_format(axis="both", style="sci", scilimits=(-2, 3))
    ax.legend(fontsize=7)
    return slope, corr


def spectrum(delta):
    """Singular values of ΔW, largest first (how many directions the update really uses)."""
    _check_matrix("delta", delta)
    return torch.linalg.svdvals(delta.detach().double())


def energy_rank(delta, energy=0.99):
    """The fewest singular directions that hold `energy` of ΔW's squared Frobenius norm (0 for ΔW = 0)."""
    validate.number("energy", energy, 0, 1, low_open=True)
    s2 = spectrum(delta) ** 2
    if s2.sum() == 0:
        return 0
    share = torch.cumsum(s2, 0) / s2.sum()
    return int((share < energy - 1e-12).sum().item()) + 1


def sparsity(delta, tol=0.0):
    """Fraction of ΔW's entries with |x| <= tol (SBoRA's updates are exactly sparse, LoRA's are dense)."""
    _check_matrix("delta", delta)
    validate.number("tol", tol, 0)
    return (delta.detach().abs() <= tol).double().mean().item()


def changed_rows_cols(delta, tol=0.0):
    """(rows, columns) of ΔW with any |x| > tol: SBoRA-FA changes exactly r columns, FB exactly r rows."""
    _check_matrix("delta", delta)
    validate.number("tol", tol, 0)
    changed = delta.detach().abs() > tol
    return int(changed.any(dim=1).sum()), int(changed.any(dim=0).sum())


def step_cost(model, batch, loss_fn=None, repeats=5):
    """One training step's cost: {"time_ms": median forward+backward time, "saved_mb": activation memory}.

    saved_mb counts the tensors autograd keeps for the backward pass (parameters excluded), measured
    exactly with saved-tensor hooks, so it is the same on every device; DoRA's undetached norm shows
    up here as an extra out x in matrix per layer (paper §4.3).
    """
    return compare_step_costs({"model": model}, batch, loss_fn, repeats)["model"]


def compare_step_costs(models, batch, loss_fn=None, repeats=5):
    """step_cost of several models {label: model}, timed in turns (A, B, C, A, B, C, ...) so that
    a busy machine slows them all alike. Returns {label: {"time_ms", "saved_mb"}}."""
    validate.positive_int("repeats", repeats)
    if not isinstance(models, dict) or not models or not all(isinstance(m, nn.Module) for m in models.values()):
        raise TypeError("models must be a non-empty {label: nn.Module} dict")
    times = {label: [] for label in models}
    saved_mb = {}
    for i in range(repeats + 1):  # the first round warms up and is not timed
        for label, model in models.items():
            seconds, saved_mb[label] = measured_step(model, batch, loss_fn)
            if i:
                times[label].append(seconds)
    return {label: {"time_ms": 1000 * statistics.median(times[label]), "saved_mb": saved_mb[label]}
            for label in models}


def measured_step(model, batch, loss_fn):
    """(seconds, MB of non-parameter tensors saved for backward) of one forward + backward pass.

    Two passes: the saved-tensor hook runs Python once per saved tensor, which would slow the methods with
    many small operations most, so the timed pass runs without it."""
    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in param_storages:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    with model_mode(model, True):  # a training step, with dropout; the caller's mode comes back afterwards
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = compute_loss(model, batch, loss_fn)
        loss.backward()
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        compute_loss(model, batch, loss_fn).backward()
        seconds = time.perf_counter() - start
        model.zero_grad(set_to_none=True)
    return seconds, sum(saved.values()) / 2**20
