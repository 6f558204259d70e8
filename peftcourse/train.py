"""The one training loop of the course. Every notebook and `peftcourse.pretrain` use it.

    history = train(model, batches, steps=200, lr=1e-3)                 # HF model: batch is a dict with labels
    history = train(net, batches, steps=200, loss_fn=F.cross_entropy)   # any model: batch is (inputs, target)

Only parameters with requires_grad=True reach the optimizer: freezing is how every PEFT method
"trains a small part", so the loop itself never needs to know which method is in use.
"""
import math
import resource
import sys
import time

import torch
from .progress import progress as progress_line

from . import validate
from .runtime import DEFAULT_SEED, eval_mode, get_device, seed_everything, to_device


class History:
    """What happened in a run: one record per step (step, loss, time_s, peak_mem_mb) plus eval records."""

    def __init__(self):
        self.records = []  # every step
        self.evals = []    # {"step": ..., metric: value, ...} at each eval

    @property
    def steps(self):
        return [r["step"] for r in self.records]

    @property
    def losses(self):
        return [r["loss"] for r in self.records]

    @property
    def wall_time(self):
        return self.records[-1]["time_s"] if self.records else 0.0

    @property
    def peak_mem_mb(self):
        return max((r["peak_mem_mb"] for r in self.records), default=0.0)

    def metric(self, name):
        """(steps, values) of one eval metric, for plotting."""
        rows = [e for e in self.evals if name in e]
        if not rows:
            known = sorted({k for e in self.evals for k in e} - {"step"})
            raise KeyError(f"no eval metric {name!r} in this history; it has {known}")
        return [e["step"] for e in rows], [e[name] for e in rows]

    def last(self, name):
        """The last value of an eval metric."""
        return self.metric(name)[1][-1]

    def smoothed_losses(self, window=20):
        """Running mean of the loss (plots of per-step loss are noisy)."""
        validate.positive_int("window", window)
        out, acc = [], 0.0
        for i, v in enumerate(self.losses):
            acc += v
            if i >= window:
                acc -= self.losses[i - window]
            out.append(acc / min(i + 1, window))
        return out

    def __repr__(self):
        loss = f"{self.losses[-1]:.4f}" if self.records else "-"
        return f"History(steps={len(self.records)}, last_loss={loss}, evals={len(self.evals)}, wall_time={self.wall_time:.1f}s)"


def peak_memory_mb(device):
    """Peak memory so far: allocated tensors on CUDA, the process's peak resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def compute_loss(model, batch, loss_fn=None):
    """HF style (dict batch with labels -> model(**batch).loss) or (inputs, target) with loss_fn(output, target)."""
    if loss_fn is None:
        if not isinstance(batch, dict):
            raise TypeError("without loss_fn the batch must be a dict for a Hugging Face model "
                            f"(with 'labels'); got {type(batch).__name__}. Pass loss_fn=... for (inputs, target) batches")
        out = model(**batch)
        if getattr(out, "loss", None) is None:
            raise ValueError("the model returned no loss: put 'labels' in the batch or pass loss_fn")
        return out.loss
    if isinstance(batch, dict):
        raise TypeError("with loss_fn the batch must be (inputs, target), got a dict")
    if not isinstance(batch, (list, tuple)) or len(batch) != 2:
        raise TypeError(f"with loss_fn each batch must be a pair (inputs, target), got {type(batch).__name__}"
                        f"{f' of length {len(batch)}' if isinstance(batch, (list, tuple)) else ''}")
    inputs, target = batch
    out = model(inputs)
    logits = getattr(out, "logits", out)
    loss = loss_fn(logits, target)
    if not torch.is_tensor(loss) or loss.numel() != 1:
        raise TypeError(f"loss_fn must return a single-number tensor (e.g. F.cross_entropy's mean), got "
                        f"{type(loss).__name__}{f' of shape {tuple(loss.shape)}' if torch.is_tensor(loss) else ''}")
    return loss


def make_optimizer(params, name, lr, weight_decay):
    if callable(name):
        opt = name(params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"optimizer={name!r} must return a torch.optim.Optimizer for the parameters, "
                            f"got {type(opt).__name__}")
        return opt
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: use 'adamw', 'adam', 'sgd' or a callable params -> optimizer")


def check_train_args(model, data, steps, lr, loss_fn, optimizer, weight_decay, schedule, warmup, clip,
                     eval_fn, eval_every, seed, progress):
    """Every option of train(), checked before the model is touched."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
    if isinstance(data, dict) or torch.is_tensor(data) or not hasattr(data, "__iter__"):
        raise TypeError(f"data must be an iterable of batches (a list or a DataLoader), got one "
                        f"{type(data).__name__}; wrap a single batch in a list: [batch]")
    validate.positive_int("steps", steps)
    validate.positive_number("lr", lr)
    validate.number("weight_decay", weight_decay, 0)
    validate.choice("schedule", schedule, ("constant", "cosine"))
    validate.int_in("warmup (steps of linear warm-up)", warmup, 0, steps)
    validate.number("clip (the gradient-norm limit; 0 switches clipping off)", clip, 0)
    if eval_every is not None:
        validate.positive_int("eval_every", eval_every)
    for name, fn in (("eval_fn", eval_fn), ("loss_fn", loss_fn)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be a function or None, got {type(fn).__name__}")
    if not callable(optimizer):
        validate.choice("optimizer", optimizer, ("adamw", "adam", "sgd"))
    validate.int_in("seed", seed, 0, 2**32 - 1)
    validate.flag("progress", progress)


def train(model, data, *, steps, lr=1e-3, loss_fn=None, optimizer="adamw", weight_decay=0.0,
          schedule="constant", warmup=0, clip=1.0, eval_fn=None, eval_every=None,
          seed=DEFAULT_SEED, device=None, progress=True, desc="train", autocast=None,
          start_step=0, state=None, on_step=None):
    """Train `model` for `steps` optimizer steps on batches from `data` (cycled when exhausted).

    eval_fn(model) -> dict of metrics runs every `eval_every` steps and after the last step,
    in eval mode and without gradients. Returns a History. A NaN/Inf loss stops the run.
    autocast: None (full precision) or a dtype such as torch.bfloat16 for mixed precision.
    Resuming (peftcourse.pretrain): steps 1..start_step count as done, `state` = {"optimizer",
    "scheduler"[, "rng"]} state dicts saved from an earlier run, and `data` must continue where that
    run stopped; on_step(step, history, optimizer, scheduler) runs after every step (to save checkpoints).
    """
    check_train_args(model, data, steps, lr, loss_fn, optimizer, weight_decay, schedule, warmup, clip,
                     eval_fn, eval_every, seed, progress)
    if (isinstance(start_step, bool) or not isinstance(start_step, int) or not 0 <= start_step < steps
            or (start_step > 0) != (state is not None)):
        raise ValueError(f"start_step must be an int in [0, steps={steps}), and > 0 exactly when a resume "
                         f"state is given; got start_step={start_step!r}, state given: {state is not None}")
    if state is not None and (not isinstance(state, dict) or not {"optimizer", "scheduler"} <= set(state)):
        raise ValueError("state must be a dict with the 'optimizer' and 'scheduler' state dicts of the earlier run")
    if autocast is not None:
        validate.float_dtype("autocast", autocast)
    if on_step is not None and not callable(on_step):
        raise TypeError(f"on_step must be a function (step, history, optimizer, scheduler) or None, got {on_step!r}")
    seed_everything(seed)
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all requires_grad=False): nothing to train")
    opt = make_optimizer(params, optimizer, lr, weight_decay)

    def lr_at(step):  # linear warmup, then constant or cosine decay to 10% (step counts from 1)
        if warmup and step <= warmup:
            return step / warmup
        if schedule == "cosine":
            t = (step - warmup) / max(1, steps - warmup)
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))
        return 1.0

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: lr_at(i + 1))
    if state is not None:  # continue an interrupted run exactly: moments, schedule position, random stream
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if "rng" in state:
            torch.set_rng_state(state["rng"])
    batches = _repeat(data)
    history = History()

    def run_eval(step):
        with eval_mode(model):
            metrics = eval_fn(model)
        if not isinstance(metrics, dict):
            raise TypeError(f"eval_fn must return a dict of metrics, got {type(metrics).__name__}")
        history.evals.append({"step": step, **metrics})
        return metrics

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    start = time.perf_counter()
    bar = progress_line(range(start_step + 1, steps + 1), desc=desc, enabled=progress)  # a summary line in notebooks
    for step in bar:
        batch = to_device(next(batches), device)
        with torch.autocast(device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            loss = compute_loss(model, batch, loss_fn)
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"loss became {value} at step {step} (lr={lr}, clip={clip}): stopping instead of "
                                     "training on; lower the learning rate, clip gradients or check the inputs")
        opt.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
        if not loss.requires_grad or all(p.grad is None for p in params):
            raise ValueError(f"no trainable parameter got a gradient at step {step}: the loss does not depend on "
                             f"the {len(params)} trainable tensors (are the adapted layers used by the forward pass?)")
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip else math.inf)
        if not torch.isfinite(norm):
            raise FloatingPointError(f"the gradient norm became {norm.item()} at step {step} (lr={lr}, clip={clip}): "
                                     "stopping before the weights turn NaN; lower the learning rate or check the inputs")
        opt.step()
        sched.step()
        history.records.append({"step": step, "loss": value, "time_s": time.perf_counter() - start,
                                "peak_mem_mb": peak_memory_mb(device)})
        if step % 10 == 0 or step == steps:
            bar.set_postfix(loss=f"{value:.4f}")
        if eval_fn is not None and ((eval_every and step % eval_every == 0) or step == steps):
            if not history.evals or history.evals[-1]["step"] != step:
                run_eval(step)
        if on_step is not None:
            on_step(step, history, opt, sched)
    bar.close()
    return history


def _repeat(data):
    """Cycle a re-iterable (DataLoader) or a one-shot iterator; fail clearly when it is empty."""
    while True:
        empty = True
        for batch in data:
            empty = False
            yield batch
        if empty:
            raise ValueError("the training data yielded no batches (a one-shot generator is used up after one pass: give a list or a DataLoader)")
