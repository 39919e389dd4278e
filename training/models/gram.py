"""Σ_{i,j} x_i x_j v_i ⊙ v_j (t_i · t_j) through the Gram matrix, with a hand-written backward.

It is GML-FM's B-matrix term Σ_b B_ab² (MATH.md) computed without forming the k×k' matrix B.
Autograd would spend four batched matmuls on the backward; the symmetry of t tᵀ lets two do,
which is most of what keeps GML-FM's epoch close to FM's.
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


def gram_square(xv: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(B, k): entry a is Σ_{i,j} xv_ia xv_ja (t_i · t_j) = Σ_b (Σ_i xv_ia t_ib)²."""
    return _GramSquare.apply(xv, t)
