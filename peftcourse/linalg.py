"""Rank, low-rank factorisation, SVD truncation, parameter counts and intrinsic dimensionality.

The lecture's "Recap: Matrix Rank" and "Rank Matrix Decomposition" slides, and the "Motivation of LoRA"
slide (Aghajanyan et al. 2020, "Intrinsic Dimensionality Explains the Effectiveness of Language Model
Fine-Tuning"), computed rather than asserted.
"""
import math

import torch
from torch import nn
from torch.func import functional_call

from . import validate


def as_matrix(M):
    """A float64 2-D tensor (rank decisions in float32 are needlessly fragile for small examples)."""
    try:
        M = torch.as_tensor(M)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"expected a 2-D matrix (a tensor or nested lists of numbers), got {type(M).__name__}") from None
    if M.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {tuple(M.shape)}")
    if not (M.dtype.is_floating_point or M.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise TypeError(f"expected a real matrix, got dtype {M.dtype}")
    M = M.detach().to("cpu", torch.float64)
    if not torch.isfinite(M).all():
        raise ValueError("the matrix contains NaN or Inf: its rank and singular values are undefined")
    return M


def singular_values(M):
    """σ1 ≥ σ2 ≥ ... ≥ 0: how much of the matrix lies along each independent direction."""
    return torch.linalg.svdvals(as_matrix(M))


def rank_tolerance(M, dtype=torch.float64):
    """The default cut-off below which a singular value counts as zero: σ_max · max(m, n) · eps.

    Same rule as numpy.linalg.matrix_rank and torch.linalg.matrix_rank. In floating point a rank-1 matrix
    has tiny nonzero σ2, σ3 (rounding), so "rank" always means "rank at a tolerance". eps is that of
    `dtype`: pass the dtype the matrix was computed in (float32 for a model's weights).
    """
    M = as_matrix(M)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a torch floating dtype (torch.float32, torch.float64), got {dtype!r}")
    sigma_max = singular_values(M)[0].item() if M.numel() else 0.0
    return sigma_max * max(M.shape) * torch.finfo(dtype).eps


def numerical_rank(M, tol=None):
    """Number of singular values above `tol` (default: rank_tolerance(M)) = number of independent rows/columns."""
    if tol is not None:
        validate.number("tol", tol, 0, kind="a non-negative number or None")
    tol = rank_tolerance(M) if tol is None else tol
    return int((singular_values(M) > tol).sum())


def rank_factorization(M, tol=None):
    """M = C @ R with R = the first linearly independent ROWS of M (r × n) and C their coefficients (m × r).

    The lecture's slide: the rank-1 matrix [[2,10,1],[4,20,2],[6,30,3]] = [1,2,3]ᵀ · [2,10,1].
    """
    M = as_matrix(M)
    rows = []
    for i in range(M.shape[0]):  # keep a row only if it adds a new direction
        if numerical_rank(M[rows + [i]], tol) > len(rows):
            rows.append(i)
    R = M[rows]
    C = torch.linalg.lstsq(R.T, M.T).solution.T  # solve C R = M for C
    return C, R


def low_rank_factors(M, r):
    """The best rank-r factors in LoRA's shapes: B (m × r) and A (r × n) with B @ A = svd_truncate(M, r).

    From the SVD M = U diag(σ) Vᵀ: B = U_r diag(√σ_r), A = diag(√σ_r) V_rᵀ (the scale shared evenly).
    """
    M = as_matrix(M)
    _check_rank_arg(r, M)
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    root = S[:r].sqrt()
    return U[:, :r] * root, root[:, None] * Vh[:r]


def svd_truncate(M, r):
    """The best rank-r approximation of M in Frobenius and spectral norm (Eckart–Young): keep the top r σ's."""
    B, A = low_rank_factors(M, r)
    return B @ A


def truncation_errors(M):
    """Relative Frobenius error ‖M − M_r‖ / ‖M‖ for r = 0, 1, ..., min(m, n), straight from the σ's.

    Eckart–Young: ‖M − M_r‖² = σ_{r+1}² + σ_{r+2}² + ...: the energy in the dropped directions.
    """
    s2 = singular_values(M) ** 2
    if s2.sum() == 0:
        raise ValueError("the matrix is all zeros: an error relative to its norm is undefined (0/0)")
    tail = torch.cat([s2.flip(0).cumsum(0).flip(0), torch.zeros(1, dtype=s2.dtype)])
    return (tail / s2.sum()).sqrt()


def _check_rank_arg(r, M):
    if not isinstance(r, int) or isinstance(r, bool) or not 1 <= r <= min(M.shape):
        raise ValueError(f"r must be an int in [1, min(m, n)] = [1, {min(M.shape)}] for a {tuple(M.shape)} matrix, "
                         f"got {r!r}")


def full_params(d, k=None):
    """Entries of a d × k weight matrix (k = d: square, the lecture's n²)."""
    k = d if k is None else k
    return validate.positive_int("d", d) * validate.positive_int("k", k)


def lowrank_params(d, r, k=None):
    """Entries of B (d × r) plus A (r × k): r·(d + k), the lecture's n² ⇒ 2·r·n when d = k = n."""
    k = d if k is None else k
    full_params(d, k)
    validate.positive_int("r", r)
    if r > min(d, k):
        raise ValueError(f"r={r} exceeds min(d, k) = {min(d, k)}: a rank-{r} factorisation of a {d}×{k} matrix does not exist")
    return r * (d + k)


class SubspaceModel(nn.Module):
    """Train a model only inside a random d-dimensional subspace: θ = θ0 + P z, with only z (d numbers) trainable.

    Li et al. 2018 ("Measuring the Intrinsic Dimension of Objective Landscapes"), used by Aghajanyan et al. 2020
    for fine-tuning. P is a fixed dense random D × d matrix with unit-length columns (the papers use the
    Fastfood transform for big models; a dense P is fine for the few thousand weights of a small model).
    z starts at 0, so the wrapped model starts exactly at θ0 (random init, or pretrained weights).
    """

    MAX_P_ENTRIES = 50_000_000  # 200 MB in float32

    def __init__(self, model, d, seed=0):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
        validate.int_in("seed", seed, 0, 2**63 - 1)
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        if not self.names:
            raise ValueError("the model has no trainable parameters to re-parametrise")
        params = dict(model.named_parameters())
        self.shapes = [params[n].shape for n in self.names]
        total = sum(math.prod(s) for s in self.shapes)
        if not isinstance(d, int) or isinstance(d, bool) or not 1 <= d <= total:
            raise ValueError(f"d must be an int in [1, D] = [1, {total}] (D = the model's trainable parameters), got {d!r}")
        if total * d > self.MAX_P_ENTRIES:
            raise ValueError(f"a dense P of {total:,} × {d:,} is too large; use a smaller model or d")
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model
        weight = params[self.names[0]]
        self.register_buffer("theta0", torch.cat([params[n].detach().reshape(-1) for n in self.names]))
        g = torch.Generator().manual_seed(seed)
        P = torch.randn(total, d, generator=g)
        self.register_buffer("P", (P / P.norm(dim=0, keepdim=True)).to(weight.device, weight.dtype))
        self.z = nn.Parameter(torch.zeros(d, device=weight.device, dtype=weight.dtype))

    @property
    def d(self):
        return self.z.numel()

    def current_params(self):
        """θ0 + P z, split back into the wrapped model's parameter shapes."""
        flat = self.theta0 + self.P @ self.z
        chunks = flat.split([math.prod(s) for s in self.shapes])
        return {n: c.view(s) for n, c, s in zip(self.names, chunks, self.shapes)}

    def forward(self, *args, **kwargs):
        return functional_call(self.model, self.current_params(), args, kwargs)


def d90(dims, scores, full_score, fraction=0.9):
    """The smallest d whose score reaches `fraction` of the full-training score (Aghajanyan et al.'s d90), or None."""
    if not isinstance(dims, (list, tuple)) or not isinstance(scores, (list, tuple)) or len(dims) != len(scores) or not dims:
        raise ValueError("dims and scores must be non-empty lists of equal length")
    for d, s in zip(dims, scores):
        validate.positive_int("each d", d)
        validate.number("each score", s)
    validate.number("full_score", full_score)
    validate.number("fraction", fraction, 0, 1, low_open=True)
    reached = [d for d, s in sorted(zip(dims, scores)) if s >= fraction * full_score]
    return reached[0] if reached else None
