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


def _sbora_fb_grad_cases():
    """SBoRA-FB's gradient of A by autograd, on random layers, inputs and upstream gradients."""
    cases = []
    for seed, (d_in, d_out, r, alpha) in ((0, (9, 12, 3, 6)), (1, (6, 5, 2, 2))):
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        layer = SBoRALinear(nn.Linear(d_in, d_out), r=r, alpha=alpha, variant="FB", generator=g)
        with torch.no_grad():
            layer.A.normal_()
        x, grad_out = torch.randn(4, d_in), torch.randn(4, d_out)
        layer(x).backward(grad_out)
        idx, s = layer.indices.clone(), layer.scaling
        cases.append(Case(
            inputs={"x": x, "grad_out": grad_out, "indices": idx, "scaling": s}, expected=layer.A.grad.detach(),
            wrong=((grad_out[:, idx].T @ x, "the scaling α/r is missing: the branch is scaling · A x."),
                   (s * grad_out[:, :r].T @ x, "you took the first r outputs' gradients; A's rows write into the "
                                               "outputs listed in indices."),
                   (s * grad_out[:, idx].T @ x / len(x), "you averaged over the batch; the gradient of a summed "
                                                          "loss adds the batch's contributions.")),
            shape_note="x is (batch, in), grad_out is (batch, out), indices holds r output positions; ∂loss/∂A is "
                       "(r, in), like A."))
    return cases


FB_GRAD = Exercise(
    "10-fb-grad", "code", "SBoRA-FB's gradient of A, without the one-hot matrix", "sbora_fb_grad",
    hint="the branch adds scaling · (A x) into the outputs at indices: by the chain rule only those outputs' upstream "
         "gradients reach A, ∂loss/∂A = scaling · grad_out[:, indices]ᵀ · x, summed over the batch.",
    reread=where("3 (The implementation: no one-hot matrix in the forward pass)", "'SBoRA-FB: Regional Weight Update Example'"),
    explain="Only the r chosen outputs' gradients train A: the update is regional in the backward pass too, and "
            "B_sb never has to be built.",
    cases=_sbora_fb_grad_cases)


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

EXERCISES = (FA_PARAMS, FB_GRAD, FA_REGION)
