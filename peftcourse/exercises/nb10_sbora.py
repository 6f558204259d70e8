"""Answer key of notebooks/10_sbora.ipynb (worked solutions: solutions/10_sbora.py)."""
import torch
from torch import nn

from ..sbora import SBoRALinear
from .core import Case, Exercise, where

FA_PARAMS = Exercise(
    "10-fa-params", "quick", "SBoRA-FA weights on 4096 x 4096 at r = 32", "answer",
    hint="SBoRA-FA fixes A as r one-hot rows; only B (out × r) trains.",
    reread=where("1 (The layer)", "'SBoRA-FA and SBoRA-FB'"),
    explain="out × r: half of LoRA's r·(in + out) on a square layer.",
    expected=lambda: 4096 * 32,
    mistakes=((lambda e: 32 * (4096 + 4096), "that is LoRA's count: SBoRA-FA's A is fixed (one-hot), "
                                             "only B trains."),))


def _sbora_fb_cases():
    cases = []
    for seed, (d_in, d_out, r, alpha) in ((0, (9, 12, 3, 6)), (1, (6, 5, 2, 2))):
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        layer = SBoRALinear(nn.Linear(d_in, d_out), r=r, alpha=alpha, variant="FB", generator=g)
        with torch.no_grad():
            layer.A.normal_()
        x = torch.randn(4, d_in)
        out = layer(x)
        probe = torch.randn_like(out)
        (out * probe).sum().backward()
        W0, b, A, idx = (t.detach().clone() for t in (layer.base.weight, layer.base.bias, layer.A, layer.indices))
        s = layer.scaling
        base = x @ W0.T + b
        upd = s * x @ A.T
        overwrite = base.clone()
        overwrite[:, idx] = upd
        cases.append(Case(
            inputs={"x": x, "W0": W0, "b": b, "A": A, "indices": idx, "scaling": s}, expected=out.detach(),
            wrong=((base.index_add(-1, idx, x @ A.T), "the scaling α/r is missing."),
                   (overwrite, "you replaced the chosen outputs; index_add adds the update to W₀x + b there."),
                   (base.index_add(-1, idx, s * x @ A.T) - b, "the base layer's bias b is missing.")),
            grads={"A": layer.A.grad}, probe=probe,
            shape_note="x is (batch, in), A is (r, in), indices holds r output positions; the result is (batch, out)."))
    return cases


FB_FORWARD = Exercise(
    "10-fb-forward", "code", "SBoRA-FB's forward with index_add", "sbora_fb_forward",
    hint="compute W₀x + b, then add s·(A x) into the r chosen outputs with index_add along the last dimension.",
    reread=where("3 (No one-hot matrix in the forward pass)", "'SBoRA-FB: Regional Weight Update Example'"),
    explain="FB changes exactly r rows of W: only the r chosen outputs move.",
    cases=_sbora_fb_cases)


def _fa_changed_outputs():
    """How many of a 16×16 SBoRA-FA layer's outputs its (random, trained-looking) update changes on one input."""
    torch.manual_seed(0)
    layer = SBoRALinear(nn.Linear(16, 16), r=4, alpha=4, variant="FA", generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer.B.normal_()
        return int((layer.adapter_forward(torch.randn(1, 16)) != 0).sum())


FA_REGION = Exercise(
    "10-fa-region", "predict", "how many outputs SBoRA-FA r=4 changes on a 16×16 layer", "prediction",
    hint="", reread=where("2 (The lecture's 4 × 4 examples)", "'SBoRA-FA: Regional Weight Update Example'"),
    explain="Measured: {m} of 16 outputs change. ΔW = B·A_sb has r = 4 nonzero columns, one per chosen input, and "
            "each of them spans all 16 rows: SBoRA-FA reads 4 input features and writes every output. SBoRA-FB is "
            "the one that changes only r outputs (r rows of W).",
    options={"a": "only the 4 outputs at the chosen indices", "b": "all 16 outputs", "c": "none: the update is regional"},
    outcome=lambda n: {0: "c", 16: "b"}.get(n, "a"), measure=_fa_changed_outputs)

EXERCISES = (FA_PARAMS, FB_FORWARD, FA_REGION)
