"""GML-FM's pair term through the W × W matrices of an instance, with hand-written backwards.

Autograd would spend extra batched matmuls and elementwise passes over (B, W, k) tensors on
these backwards; the symmetry of the pair matrices lets fewer do, which is most of what keeps
GML-FM's epoch close to FM's. Both equal the naive double loop (tests/training/test_gmlfm.py).
"""

from __future__ import annotations

import torch


class _GramSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xv: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """xv (B, W, k), t (B, W, k') -> (B, k)."""
        gram = torch.bmm(t, t.transpose(1, 2))  # (B, W, W), symmetric
        spread = torch.bmm(gram, xv)  # (B, W, k)
        ctx.save_for_backward(xv, t, spread)
        return (xv * spread).sum(1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xv, t, spread = ctx.saved_tensors
        grad = grad.unsqueeze(1)  # (B, 1, k)
        grad_xv = 2 * grad * spread
        grad_gram = torch.bmm(xv * grad, xv.transpose(1, 2))  # (B, W, W), symmetric
        return grad_xv, 2 * torch.bmm(grad_gram, t)


class _SquaredDistancePairs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xv: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """xv (B, W, k), t (B, W, k') -> (B, k)."""
        sq = torch.einsum("bwc,bwc->bw", t, t)
        # D_ij = |t_i|² + |t_j|² − 2 t_i·t_j, symmetric with a zero diagonal
        distance = torch.baddbmm(sq.unsqueeze(2) + sq.unsqueeze(1), t, t.transpose(1, 2),
                                 alpha=-2.0)
        spread = torch.bmm(distance, xv)  # (B, W, k)
        ctx.save_for_backward(xv, t, spread)
        return 0.5 * (xv * spread).sum(1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xv, t, spread = ctx.saved_tensors
        grad = grad.unsqueeze(1)  # (B, 1, k)
        pair = torch.bmm(xv * grad, xv.transpose(1, 2))  # (B, W, W): Σ_a g_a xv_ia xv_ja
        # ∂/∂t_i = 2 Σ_j pair_ij (t_i − t_j): the pair matrix's Laplacian times t
        laplacian = torch.diag_embed(pair.sum(-1)) - pair
        return grad * spread, torch.bmm(2 * laplacian, t)


def gram_square(xv: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(B, k): entry a is Σ_{i,j} xv_ia xv_ja (t_i · t_j) = Σ_b (Σ_i xv_ia t_ib)²."""
    return _GramSquare.apply(xv, t)


def squared_distance_pairs(xv: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(B, k): Σ_{i<j} |t_i − t_j|² xv_i ⊙ xv_j, the weighted squared-distance pair term."""
    return _SquaredDistancePairs.apply(xv, t)
