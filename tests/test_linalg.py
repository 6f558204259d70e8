"""Rank, factorisations, SVD truncation, parameter counts and the subspace (intrinsic-dimension) wrapper."""
import numpy as np
import pytest
import torch
from torch import nn
import torch.nn.functional as F

import peftcourse as pc
from peftcourse import linalg as L

RANK1 = [[2, 10, 1], [4, 20, 2], [6, 30, 3]]   # the lecture's slides "Rank-1/2/3 Matrix"
RANK2 = [[2, 10, 1], [7, 20, 2], [6, 30, 3]]
RANK3 = [[2, 3, 1], [7, 5, 2], [6, 1, 3]]


def random_low_rank(m, n, r, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, r, generator=g, dtype=torch.float64) @ torch.randn(r, n, generator=g, dtype=torch.float64)


def test_lecture_matrices():
    assert [L.numerical_rank(M) for M in (RANK1, RANK2, RANK3)] == [1, 2, 3]
    C, R = L.rank_factorization(RANK1)  # = [1, 2, 3]ᵀ · [2, 10, 1]
    torch.testing.assert_close(C, torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64))
    torch.testing.assert_close(R, torch.tensor([[2.0, 10.0, 1.0]], dtype=torch.float64))
    assert C.numel() + R.numel() == 6 == L.lowrank_params(3, 1) and L.full_params(3) == 9


@pytest.mark.parametrize("m, n, r", [(5, 8, 1), (12, 7, 3), (20, 20, 19), (6, 6, 6)])
def test_rank_agrees_with_numpy_and_factorisation_is_exact(m, n, r):
    M = random_low_rank(m, n, r, seed=m * n)
    assert L.numerical_rank(M) == r == np.linalg.matrix_rank(M.numpy()) == torch.linalg.matrix_rank(M).item()
    s = np.linalg.svd(M.numpy(), compute_uv=False)
    assert L.rank_tolerance(M) == pytest.approx(s.max() * max(M.shape) * np.finfo(np.float64).eps)
    C, R = L.rank_factorization(M)
    assert C.shape == (m, r) and R.shape == (r, n)
    torch.testing.assert_close(C @ R, M)
    assert all(any(torch.equal(row, M[i]) for i in range(m)) for row in R)  # R is made of M's own rows


def test_tolerance_decides_rank():
    M = torch.diag(torch.tensor([1.0, 1e-3, 1e-9], dtype=torch.float64))
    assert L.numerical_rank(M) == 3
    assert L.numerical_rank(M, tol=1e-6) == 2 and L.numerical_rank(M, tol=1e-2) == 1
    assert L.rank_tolerance(M, dtype=torch.float32) > L.rank_tolerance(M)  # float32 eps is larger
    with pytest.raises(ValueError, match="tol must be a non-negative number"):
        L.numerical_rank(M, tol=-1)
    with pytest.raises(ValueError, match="2-D matrix"):
        L.numerical_rank(torch.ones(3))


def test_svd_truncation_is_best_and_errors_come_from_singular_values():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(30, 20, generator=g, dtype=torch.float64)
    errors = L.truncation_errors(M)
    assert errors.shape == (21,) and errors[0] == pytest.approx(1.0) and errors[-1] == pytest.approx(0.0, abs=1e-12)
    assert torch.all(errors[1:] <= errors[:-1])
    for r in (1, 5, 19):
        Mr = L.svd_truncate(M, r)
        B, A = L.low_rank_factors(M, r)
        assert B.shape == (30, r) and A.shape == (r, 20) and L.numerical_rank(Mr) == r
        err = (torch.linalg.matrix_norm(M - Mr) / torch.linalg.matrix_norm(M)).item()
        assert err == pytest.approx(errors[r].item(), rel=1e-9)
        # Eckart–Young: no other rank-r matrix is closer, e.g. projecting onto r random directions
        Q, _ = torch.linalg.qr(torch.randn(20, r, generator=g, dtype=torch.float64))
        assert err < (torch.linalg.matrix_norm(M - M @ Q @ Q.T) / torch.linalg.matrix_norm(M)).item()
    with pytest.raises(ValueError, match=r"r must be an int in \[1, min\(m, n\)\] = \[1, 20\]"):
        L.svd_truncate(M, 21)


def test_parameter_counts():
    assert L.full_params(4096) == 4096 ** 2 and L.lowrank_params(4096, 8) == 2 * 8 * 4096
    assert L.lowrank_params(768, 4, k=3072) == 4 * (768 + 3072)
    with pytest.raises(ValueError, match="r=5 exceeds min"):
        L.lowrank_params(4, 5)
    with pytest.raises(ValueError, match="d must be a positive int"):
        L.full_params(0)


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def test_subspace_model_starts_at_theta0_and_trains_only_z():
    net = small_net()
    x = torch.randn(16, 4)
    y0 = net(x)
    sub = L.SubspaceModel(net, d=5, seed=1)
    torch.testing.assert_close(sub(x), y0)
    assert [n for n, p in sub.named_parameters() if p.requires_grad] == ["z"] and sub.d == 5
    torch.testing.assert_close(sub.P.norm(dim=0), torch.ones(5))
    # chain rule: dL/dz = Pᵀ dL/dθ
    target = torch.randint(0, 3, (16,))
    F.cross_entropy(sub(x), target).backward()
    full = small_net()
    F.cross_entropy(full(x), target).backward()
    grad_theta = torch.cat([p.grad.reshape(-1) for p in full.parameters()])
    torch.testing.assert_close(sub.z.grad, sub.P.T @ grad_theta)


def test_subspace_training_with_the_course_loop():
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    target = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    sub = L.SubspaceModel(small_net(), d=20)
    before = F.cross_entropy(sub(x), target).item()
    pc.train(sub, [(x, target)], steps=60, lr=0.05, loss_fn=F.cross_entropy, progress=False, device="cpu")
    assert F.cross_entropy(sub(x), target).item() < 0.7 * before


def test_subspace_bad_inputs_and_d90():
    with pytest.raises(ValueError, match=r"d must be an int in \[1, D\] = \[1, 67\]"):
        L.SubspaceModel(small_net(), d=68)
    with pytest.raises(ValueError, match="d must be an int"):
        L.SubspaceModel(small_net(), d=0)
    frozen = small_net().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        L.SubspaceModel(frozen, d=2)
    assert L.d90([10, 100, 1000], [0.5, 0.85, 0.95], full_score=0.95) == 1000
    assert L.d90([100, 10, 1000], [0.9, 0.5, 0.95], full_score=0.95) == 100
    assert L.d90([10], [0.1], full_score=0.95) is None
