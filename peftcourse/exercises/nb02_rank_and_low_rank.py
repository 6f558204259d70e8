"""Answer key of notebooks/02_rank_and_low_rank.ipynb (worked solutions: solutions/02_rank_and_low_rank.py)."""
import torch

from .. import linalg
from .core import Case, Exercise, where

LOWRANK_PARAMS = Exercise(
    "02-lowrank-params", "quick", "rank-16 factors of a 4096×4096 matrix", "answer",
    hint="count the entries of B (n × r) and of A (r × n).",
    reread=where("2 (Decomposition)", "'Rep: Rank Matrix Decomposition' (n² ⇒ 2rn)"),
    explain="r·(d + k) = 2·r·n numbers instead of n².",
    expected=lambda: linalg.lowrank_params(4096, 16),
    mistakes=((lambda e: 4096 ** 2, "that is the full matrix, n²; the factorisation holds B and A only."),
              (lambda e: 16 * 16, "r × r is neither factor: B is n × r and A is r × n.")))

FRACTION = Exercise(
    "02-fraction", "quick", "fraction of n² the factors hold", "fraction",
    hint="divide the factors' entries by the full matrix's n² entries.",
    reread=where("2 (Decomposition)", "'Rep: Rank Matrix Decomposition'"),
    explain="2r/n: the saving grows with the matrix size.",
    expected=lambda: linalg.lowrank_params(4096, 16) / 4096 ** 2, tol=1e-6,
    mistakes=((lambda e: 1 / e, "upside down: the fraction is (factor entries) / n², which is below 1."),))


def _svd_cases():
    cases = []
    for seed, (m, n, r) in ((0, (7, 5, 2)), (1, (6, 9, 3))):
        g = torch.Generator().manual_seed(seed)
        M = torch.randn(m, n, generator=g).double()
        U, S, Vh = torch.linalg.svd(M, full_matrices=False)
        cases.append(Case(
            inputs={"M": M, "r": r}, expected=linalg.svd_truncate(M, r),
            wrong=(((U[:, :r + 1] * S[:r + 1]) @ Vh[:r + 1], "off by one: keep exactly r singular values, S[:r]."),
                   ((U[:, :r - 1] * S[:r - 1]) @ Vh[:r - 1], "off by one: keep exactly r singular values, S[:r]."),
                   ((U[:, -r:] * S[-r:]) @ Vh[-r:], "you kept the smallest singular values: torch.linalg.svd sorts "
                                                    "them largest first, keep the first r."),
                   (U[:, :r] @ Vh[:r], "the singular values are missing: U_r diag(S_r) V_rᵀ."),
                   (M, "nothing was truncated: the result is M itself.")),
            shape_note="M is m × n; the result is m × n too."))
    return cases


SVD_TRUNCATE = Exercise(
    "02-svd-truncate", "code", "best rank-r approximation by SVD", "svd_truncate",
    hint="torch.linalg.svd(M, full_matrices=False) gives U, S, Vh; keep the r largest singular values.",
    reread=where("3 (SVD truncation)", "'Recap: Matrix Rank' and 'What is LoRA?'"),
    explain="Eckart–Young: dropping the smallest singular values is the best rank-r approximation.",
    cases=_svd_cases)


def _i_plus_j_rank():
    i = torch.arange(100, dtype=torch.float64)
    return linalg.numerical_rank(i[:, None] + i[None, :])


RANK_I_PLUS_J = Exercise(
    "02-rank-i-plus-j", "predict", "rank of the 100×100 matrix M[i, j] = i + j", "prediction",
    hint="", reread=where("1 (Rank)", "'Rank-1 Matrix', 'Rank-2 Matrix'"),
    explain="numerical_rank says {m}. Every row is i·(1, 1, ..., 1) + (0, 1, ..., 99): a combination of two "
            "fixed rows, so M = i·1ᵀ + 1·jᵀ is a sum of two outer products, whatever its size.",
    options={"1": "rank 1", "2": "rank 2", "100": "full rank"},
    outcome=lambda rank: str(rank) if rank in (1, 2, 100) else "100", measure=_i_plus_j_rank)

EXERCISES = (LOWRANK_PARAMS, FRACTION, SVD_TRUNCATE, RANK_I_PLUS_J)
