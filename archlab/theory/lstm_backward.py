"""An LSTM layer with explicit gates and a hand-written backward pass through time, checked
against PyTorch autograd."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

# Gradients must match autograd to this relative error (float64 rounding is ~1e-16).
GRAD_TOL = 1e-8

# (input size, hidden size, sequence length, batch) for the default check.
CHECK_SIZES: tuple[tuple[int, int, int, int], ...] = (
    (1, 1, 1, 1),
    (3, 4, 5, 2),
    (7, 5, 12, 3),
    (10, 16, 20, 4),
)

GRAD_NAMES = ("w_ih", "w_hh", "b_ih", "b_hh", "x", "h0", "c0")


@dataclass(frozen=True)
class LSTMParams:
    """Weights in nn.LSTM's layout: the four gates stacked in rows, in the order i, f, g, o."""

    w_ih: Tensor  # (4H, I)
    w_hh: Tensor  # (4H, H)
    b_ih: Tensor  # (4H,)
    b_hh: Tensor  # (4H,)


@dataclass(frozen=True)
class LSTMCache:
    """What the backward pass needs from the forward pass; time is the first axis."""

    x: Tensor  # (T, B, I)
    h: Tensor  # (T + 1, B, H); h[0] = h0, h[t + 1] = h_t
    c: Tensor  # (T + 1, B, H); c[0] = c0
    gates: Tensor  # (T, 4, B, H): activated i, f, g, o
    tanh_c: Tensor  # (T, B, H): tanh(c_t), reused by δo and δc


@dataclass(frozen=True)
class LSTMGrads:
    """dL/d of every input of the layer, same shapes as the inputs."""

    w_ih: Tensor
    w_hh: Tensor
    b_ih: Tensor
    b_hh: Tensor
    x: Tensor
    h0: Tensor
    c0: Tensor


def cell_forward(
    x: Tensor, h: Tensor, c: Tensor, p: LSTMParams
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One step. Returns h_t, c_t, the gates stacked as (4, B, H) (i, f, g, o) and tanh(c_t)."""
    a = x @ p.w_ih.T + p.b_ih + h @ p.w_hh.T + p.b_hh  # (B, 4H) pre-activations
    a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)
    i, f, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.sigmoid(a_o)
    g = torch.tanh(a_g)
    c_new = f * c + i * g
    tanh_c = torch.tanh(c_new)
    return o * tanh_c, c_new, torch.stack((i, f, g, o)), tanh_c


def gate_grads(
    dh: Tensor, dc: Tensor, c_prev: Tensor, gates: Tensor, tanh_c: Tensor
) -> tuple[Tensor, Tensor]:
    """Gradients w.r.t. the gate pre-activations a = W_ih x + b_ih + W_hh h + b_hh, and δc_t.

    ``dh`` is the total dL/dh_t (this step's loss plus what flows back from step t+1); ``dc`` is
    what flows into c_t from step t+1 (f_{t+1}⊙δc_{t+1}). Returns δa as (B, 4H) in the row
    order i, f, g, o, and the total δc_t.
    """
    i, f, g, o = gates
    d_o = dh * tanh_c
    # c_t reaches the loss through h_t = o⊙tanh(c_t) and through c_{t+1} = f_{t+1}⊙c_t + ….
    d_c = dc + dh * o * (1.0 - tanh_c**2)
    d_f, d_i, d_g = d_c * c_prev, d_c * g, d_c * i
    # Through the nonlinearities: σ' = σ(1 − σ), tanh' = 1 − tanh².
    da = torch.cat(
        (d_i * i * (1.0 - i), d_f * f * (1.0 - f), d_g * (1.0 - g**2), d_o * o * (1.0 - o)),
        dim=-1,
    )
    return da, d_c


def cell_backward(
    dh: Tensor,
    dc: Tensor,
    x: Tensor,
    h_prev: Tensor,
    c_prev: Tensor,
    gates: Tensor,
    tanh_c: Tensor,
    p: LSTMParams,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One step backwards, by hand (see ``gate_grads`` for ``dh`` and ``dc``).

    Returns dx_t, dL/dh_{t−1}, dL/dc_{t−1} and this step's contributions to dW_ih, dW_hh and
    the bias (b_ih and b_hh enter the sum identically, so both get the same gradient).
    """
    da, d_c = gate_grads(dh, dc, c_prev, gates, tanh_c)
    f = gates[1]
    # h_{t−1} feeds all four gates, so its gradient sums four paths: W_hhᵀ·[δa_i; δa_f; δa_g; δa_o].
    return da @ p.w_ih, da @ p.w_hh, d_c * f, da.T @ x, da.T @ h_prev, da.sum(dim=0)


def lstm_forward(x: Tensor, h0: Tensor, c0: Tensor, p: LSTMParams) -> tuple[Tensor, LSTMCache]:
    """Run the sequence x (T, B, I); returns every h_t as (T, B, H) and the cache for backward."""
    hs, cs, gates, tanh_cs = [h0], [c0], [], []
    for x_t in x:
        h, c, g, tc = cell_forward(x_t, hs[-1], cs[-1], p)
        hs.append(h)
        cs.append(c)
        gates.append(g)
        tanh_cs.append(tc)
    h_all = torch.stack(hs)
    cache = LSTMCache(x, h_all, torch.stack(cs), torch.stack(gates), torch.stack(tanh_cs))
    return h_all[1:], cache


def lstm_backward(
    d_out: Tensor,
    cache: LSTMCache,
    p: LSTMParams,
    d_h_last: Tensor | None = None,
    d_c_last: Tensor | None = None,
) -> LSTMGrads:
    """Backpropagation through time, no autograd.

    ``d_out`` (T, B, H) is dL/dh_t from each step's own loss; ``d_h_last`` / ``d_c_last`` are
    extra gradients on the final states (what nn.LSTM returns as h_n, c_n).
    """
    steps = cache.x.shape[0]
    dh_next = torch.zeros_like(cache.h[0]) if d_h_last is None else d_h_last.clone()
    dc_next = torch.zeros_like(cache.c[0]) if d_c_last is None else d_c_last.clone()
    dx = torch.empty_like(cache.x)
    dw_ih, dw_hh = torch.zeros_like(p.w_ih), torch.zeros_like(p.w_hh)
    db = torch.zeros_like(p.b_ih)
    for t in reversed(range(steps)):
        dx[t], dh_next, dc_next, gw_ih, gw_hh, gb = cell_backward(
            d_out[t] + dh_next,
            dc_next,
            cache.x[t],
            cache.h[t],
            cache.c[t],
            cache.gates[t],
            cache.tanh_c[t],
            p,
        )
        # The same weights act at every step, so their gradient is the sum over steps.
        dw_ih += gw_ih
        dw_hh += gw_hh
        db += gb
    return LSTMGrads(dw_ih, dw_hh, db, db.clone(), dx, dh_next, dc_next)


class ManualLSTMCell(torch.autograd.Function):
    """One LSTM step in torch ops whose backward is ``cell_backward``, not autograd's.

    Lets ``torch.autograd.gradcheck`` compare the hand-written step against finite differences.
    """

    @staticmethod
    def forward(ctx, x, h, c, w_ih, w_hh, b_ih, b_hh):  # type: ignore[override]
        p = LSTMParams(w_ih, w_hh, b_ih, b_hh)
        h_new, c_new, gates, tanh_c = cell_forward(x, h, c, p)
        ctx.save_for_backward(x, h, c, w_ih, w_hh, b_ih, b_hh, gates, tanh_c)
        return h_new, c_new

    @staticmethod
    def backward(ctx, dh, dc):  # type: ignore[override]
        x, h, c, w_ih, w_hh, b_ih, b_hh, gates, tanh_c = ctx.saved_tensors
        p = LSTMParams(w_ih, w_hh, b_ih, b_hh)
        dx, dh_prev, dc_prev, dw_ih, dw_hh, db = cell_backward(dh, dc, x, h, c, gates, tanh_c, p)
        return dx, dh_prev, dc_prev, dw_ih, dw_hh, db, db


class ManualLSTM(torch.autograd.Function):
    """The whole sequence, forward by ``lstm_forward`` and backward by ``lstm_backward``."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh):  # type: ignore[override]
        p = LSTMParams(w_ih, w_hh, b_ih, b_hh)
        out, cache = lstm_forward(x, h0, c0, p)
        ctx.save_for_backward(
            w_ih, w_hh, b_ih, b_hh, cache.x, cache.h, cache.c, cache.gates, cache.tanh_c
        )
        # Clones: the outputs would otherwise be views of the saved h and c stacks.
        return out.clone(), cache.h[-1].clone(), cache.c[-1].clone()

    @staticmethod
    def backward(ctx, d_out, d_h_last, d_c_last):  # type: ignore[override]
        w_ih, w_hh, b_ih, b_hh, *cached = ctx.saved_tensors
        p = LSTMParams(w_ih, w_hh, b_ih, b_hh)
        g = lstm_backward(d_out, LSTMCache(*cached), p, d_h_last, d_c_last)
        return g.x, g.h0, g.c0, g.w_ih, g.w_hh, g.b_ih, g.b_hh


def relative_error(manual: Tensor, reference: Tensor) -> float:
    """max|manual − reference| / max|reference|: scale-free, and not blown up by entries near 0."""
    scale = reference.abs().max().item()
    return (manual - reference).abs().max().item() / max(scale, 1e-300)


def compare_with_autograd(
    input_size: int, hidden_size: int, steps: int, batch: int, seed: int = 0
) -> dict[str, float]:
    """Relative error of every hand-written gradient against nn.LSTM + autograd (float64).

    The loss is L = Σ_t ⟨G_t, h_t⟩ + ⟨G_h, h_T⟩ + ⟨G_c, c_T⟩ with random G, so dL/dh_t = G_t
    for every step and the final states get their own gradients too.
    """
    gen = torch.Generator().manual_seed(seed)
    ref = nn.LSTM(input_size, hidden_size, num_layers=1, dtype=torch.float64)
    with torch.no_grad():
        for w in ref.parameters():
            w.copy_(torch.randn(w.shape, generator=gen, dtype=torch.float64) * 0.5)
    x, h0, c0 = (
        torch.randn(shape, generator=gen, dtype=torch.float64, requires_grad=True)
        for shape in ((steps, batch, input_size), (batch, hidden_size), (batch, hidden_size))
    )
    g_out = torch.randn(steps, batch, hidden_size, generator=gen, dtype=torch.float64)
    g_h, g_c = torch.randn(2, batch, hidden_size, generator=gen, dtype=torch.float64)

    out, (h_n, c_n) = ref(x, (h0.unsqueeze(0), c0.unsqueeze(0)))
    loss = (out * g_out).sum() + (h_n[0] * g_h).sum() + (c_n[0] * g_c).sum()
    loss.backward()

    p = LSTMParams(
        ref.weight_ih_l0.detach(),
        ref.weight_hh_l0.detach(),
        ref.bias_ih_l0.detach(),
        ref.bias_hh_l0.detach(),
    )
    with torch.no_grad():  # the manual pass must not lean on autograd
        manual_out, cache = lstm_forward(x.detach(), h0.detach(), c0.detach(), p)
        grads = lstm_backward(g_out, cache, p, g_h, g_c)
    reference = {
        "w_ih": ref.weight_ih_l0.grad,
        "w_hh": ref.weight_hh_l0.grad,
        "b_ih": ref.bias_ih_l0.grad,
        "b_hh": ref.bias_hh_l0.grad,
        "x": x.grad,
        "h0": h0.grad,
        "c0": c0.grad,
    }
    errors = {name: relative_error(getattr(grads, name), reference[name]) for name in GRAD_NAMES}
    errors["forward"] = relative_error(manual_out, out.detach())
    return errors


def gradcheck_manual(seed: int = 0) -> bool:
    """torch.autograd.gradcheck (finite differences) on the hand-written step and sequence."""
    gen = torch.Generator().manual_seed(seed)
    batch, input_size, hidden, steps = 2, 3, 4, 3

    def rand(*shape: int) -> Tensor:
        return torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_()

    weights = (
        rand(4 * hidden, input_size),
        rand(4 * hidden, hidden),
        rand(4 * hidden),
        rand(4 * hidden),
    )
    h0, c0 = rand(batch, hidden), rand(batch, hidden)
    cell_ok = torch.autograd.gradcheck(
        ManualLSTMCell.apply, (rand(batch, input_size), h0, c0, *weights), raise_exception=False
    )
    seq_ok = torch.autograd.gradcheck(
        ManualLSTM.apply, (rand(steps, batch, input_size), h0, c0, *weights), raise_exception=False
    )
    return bool(cell_ok and seq_ok)


@dataclass(frozen=True)
class LSTMGradCheck:
    """Max relative error per gradient over all sizes, and whether everything passed."""

    sizes: tuple[tuple[int, int, int, int], ...]
    errors: dict[str, float]
    max_error: float
    gradcheck_ok: bool
    passed: bool


def check_lstm_gradients(
    sizes: tuple[tuple[int, int, int, int], ...] = CHECK_SIZES, seed: int = 0
) -> LSTMGradCheck:
    """Compare the manual backward with autograd for every (I, H, T, B) and run gradcheck."""
    errors = dict.fromkeys((*GRAD_NAMES, "forward"), 0.0)
    for k, (input_size, hidden, steps, batch) in enumerate(sizes):
        for name, err in compare_with_autograd(input_size, hidden, steps, batch, seed + k).items():
            errors[name] = max(errors[name], err)
    max_error = max(errors.values())
    gradcheck_ok = gradcheck_manual(seed)
    return LSTMGradCheck(
        sizes, errors, max_error, gradcheck_ok, max_error < GRAD_TOL and gradcheck_ok
    )
