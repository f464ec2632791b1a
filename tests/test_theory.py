"""Theory tools against PyTorch: conv arithmetic, softmax, hand-written LSTM backward, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from typer.testing import CliRunner

import archlab.theory.cli as theory_cli
import archlab.theory.lstm_backward as lb
import archlab.theory.softmax as sm
from archlab.errors import ArchlabError
from archlab.theory.cli import theory_app
from archlab.theory.conv import (
    LayerShape,
    as_pair,
    conv_layer,
    conv_output_size,
    pool_layer,
    walk_model,
)

torch.set_num_threads(1)  # the CI box is small; these tensors are tiny anyway
runner = CliRunner()

# ---------------------------------------------------------------- conv arithmetic


def test_study_worked_example() -> None:
    # 32 wide × 28 high RGB, 10 filters 5×5, stride 1, no padding -> W×H×D = 28×24×10.
    assert conv_layer(28, 32, 3, 10, 5) == LayerShape(height=24, width=28, depth=10, params=760)


def test_study_padding_one() -> None:
    assert conv_layer(28, 32, 3, 10, 5, padding=1) == LayerShape(26, 30, 10, 760)


def test_study_grayscale_params() -> None:
    assert conv_layer(28, 32, 1, 10, 5).params == 260  # (5·5·1 + 1)·10


def test_no_bias_drops_one_param_per_filter() -> None:
    assert conv_layer(28, 32, 3, 10, 5, bias=False).params == 750


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((227, 11, 4, 0, 1), 55),  # AlexNet conv1
        ((7, 3, 2, 0, 1), 3),
        ((7, 3, 2, 1, 1), 4),
        ((10, 3, 1, 0, 2), 6),  # dilation 2 makes a 3-tap kernel span 5 cells
        ((5, 5, 1, 0, 1), 1),  # kernel exactly fits
        ((6, 5, 2, 0, 1), 1),  # floor: the second window would overhang
    ],
)
def test_conv_output_size_known_values(args: tuple[int, ...], expected: int) -> None:
    assert conv_output_size(*args) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"in_size": 4, "kernel": 5},  # kernel larger than input
        {"in_size": 5, "kernel": 3, "dilation": 3},  # dilated span 7 > 5
        {"in_size": 0, "kernel": 1},
        {"in_size": 5, "kernel": 0},
        {"in_size": 5, "kernel": 3, "stride": 0},
        {"in_size": 5, "kernel": 3, "padding": -1},
        {"in_size": 5, "kernel": 3, "dilation": 0},
    ],
)
def test_impossible_configs_raise(kwargs: dict[str, int]) -> None:
    with pytest.raises(ArchlabError) as info:
        conv_output_size(**kwargs)
    assert "\n" not in str(info.value)


def test_layer_level_errors() -> None:
    with pytest.raises(ArchlabError, match="filters"):
        conv_layer(28, 32, 3, 0, 5)
    with pytest.raises(ArchlabError, match="width"):
        conv_layer(28, 3, 3, 10, 5)  # fits the height, not the width
    with pytest.raises(ArchlabError, match="padding"):
        pool_layer(8, 8, 3, 3, padding=2)  # more than half the window would be padding
    with pytest.raises(ArchlabError, match="two"):
        as_pair((1, 2, 3), "kernel")  # type: ignore[arg-type]


def test_per_axis_values() -> None:
    shape = conv_layer(28, 32, 3, 4, kernel=(3, 5), stride=(1, 2), padding=(0, 2), dilation=(2, 1))
    # height: (28 − 2·2 − 1)/1 + 1 = 24; width: floor((32 + 4 − 4 − 1)/2) + 1 = 16
    assert (shape.height, shape.width, shape.params) == (24, 16, (3 * 5 * 3 + 1) * 4)


def test_pool_defaults_stride_to_kernel_and_keeps_depth() -> None:
    assert pool_layer(28, 32, 3, 2) == LayerShape(14, 16, 3, 0)


small = st.integers(1, 4)
# (kernel, stride, padding, dilation) for one axis.
axis = st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(0, 3), st.integers(1, 3))
# Pooling allows padding up to half the kernel; draw mostly legal padding, sometimes one too many.
pool_axis = st.integers(1, 5).flatmap(
    lambda k: st.tuples(
        st.just(k), st.integers(1, 3), st.integers(0, k // 2 + 1), st.integers(1, 3)
    )
)


@settings(max_examples=80, deadline=None)
@given(
    h=st.integers(1, 16),
    w=st.integers(1, 16),
    c=small,
    d=small,
    ax_h=axis,
    ax_w=axis,
    bias=st.booleans(),
)
def test_conv_formula_matches_torch(
    h: int,
    w: int,
    c: int,
    d: int,
    ax_h: tuple[int, ...],
    ax_w: tuple[int, ...],
    bias: bool,
) -> None:
    """Formula output == nn.Conv2d output shape and parameter count; it refuses what torch does."""
    (kh, sh, ph, dh), (kw, sw, pw, dw) = ax_h, ax_w
    layer = nn.Conv2d(c, d, (kh, kw), (sh, sw), (ph, pw), (dh, dw), bias=bias)
    try:
        out = layer(torch.zeros(1, c, h, w))
    except RuntimeError:
        with pytest.raises(ArchlabError):
            conv_layer(h, w, c, d, (kh, kw), (sh, sw), (ph, pw), (dh, dw), bias=bias)
        return
    shape = conv_layer(h, w, c, d, (kh, kw), (sh, sw), (ph, pw), (dh, dw), bias=bias)
    assert (shape.depth, shape.height, shape.width) == tuple(out.shape[1:])
    assert shape.params == sum(p.numel() for p in layer.parameters())


@settings(max_examples=80, deadline=None)
@given(h=st.integers(1, 16), w=st.integers(1, 16), c=small, ax_h=pool_axis, ax_w=pool_axis)
def test_pool_formula_matches_torch(
    h: int, w: int, c: int, ax_h: tuple[int, ...], ax_w: tuple[int, ...]
) -> None:
    (kh, sh, ph, dh), (kw, sw, pw, dw) = ax_h, ax_w
    layer = nn.MaxPool2d((kh, kw), (sh, sw), (ph, pw), (dh, dw))
    try:
        out = layer(torch.zeros(1, c, h, w))
    except RuntimeError:
        with pytest.raises(ArchlabError):
            pool_layer(h, w, c, (kh, kw), (sh, sw), (ph, pw), (dh, dw))
        return
    shape = pool_layer(h, w, c, (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    assert (shape.depth, shape.height, shape.width) == tuple(out.shape[1:])
    assert shape.params == 0


def test_walk_model_small_net() -> None:
    relu = nn.ReLU()
    model = nn.Sequential(
        nn.Conv2d(3, 8, 5),  # 3x28x32 -> 8x24x28
        relu,
        nn.MaxPool2d(2),  # -> 8x12x14
        nn.Conv2d(8, 4, 3, stride=2, padding=1, bias=False),  # -> 4x6x7
        relu,  # the same module called twice: two rows, its (zero) params counted once
        nn.Flatten(),
        nn.Linear(4 * 6 * 7, 5),
    )
    model.train()
    rows = walk_model(model, (3, 28, 32))
    assert [r.output_shape for r in rows] == [
        (8, 24, 28),
        (8, 24, 28),
        (8, 12, 14),
        (4, 6, 7),
        (4, 6, 7),
        (168,),
        (5,),
    ]
    assert [r.name for r in rows][:2] == ["0", "1"]
    assert rows[0].params == rows[0].formula_params == (5 * 5 * 3 + 1) * 8
    assert rows[3].params == rows[3].formula_params == 3 * 3 * 8 * 4
    assert all(r.formula_shape == r.output_shape for r in rows if r.formula_shape is not None)
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
    assert model.training  # mode restored
    assert all(not m._forward_hooks for m in model.modules())  # hooks removed


def test_walk_model_counts_a_reused_layer_once() -> None:
    lin = nn.Linear(4, 4)
    model = nn.Sequential(nn.Flatten(), lin, lin)
    rows = walk_model(model, (1, 2, 2))
    assert [r.params for r in rows] == [0, 20, 0]


def test_walk_model_input_too_small() -> None:
    with pytest.raises(ArchlabError, match="does not fit"):
        walk_model(nn.Sequential(nn.Conv2d(1, 2, 5)), (1, 3, 3))
    with pytest.raises(ArchlabError):
        walk_model(nn.Sequential(nn.Conv2d(1, 2, 5)), (1, 0, 3))


@pytest.mark.parametrize(("name", "params"), [("resnet18", 11_171_779), ("vgg13", 38_677_859)])
def test_walk_registered_models(name: str, params: int) -> None:
    models = pytest.importorskip("archlab.models")
    model = models.MODELS[name].build(in_channels=1, num_classes=3)
    rows = walk_model(model, (1, 64, 64))
    checked = [r for r in rows if r.formula_shape is not None]
    assert len(checked) >= 10
    assert all(r.formula_shape == r.output_shape for r in checked)
    assert all(r.formula_params == r.params for r in checked)
    assert sum(r.params for r in rows) == params
    assert rows[-1].output_shape == (3,)


# ---------------------------------------------------------------- softmax


def test_softmax_check_passes() -> None:
    result = sm.check_softmax()
    assert result.passed
    assert result.shift_max_abs_diff < sm.SHIFT_TOL
    assert result.naive_nonfinite and result.stable_finite


def test_softmax_check_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    # With the naive form in place of the stable one, the extreme rows turn into nan.
    monkeypatch.setattr(sm, "softmax_stable", sm.softmax_naive)
    with np.errstate(over="ignore", invalid="ignore"):
        assert not sm.check_softmax().passed


@settings(max_examples=60, deadline=None)
@given(
    z=st.lists(st.floats(-1000, 1000), min_size=1, max_size=12),
    c=st.floats(-1000, 1000),
)
def test_softmax_shift_invariance(z: list[float], c: float) -> None:
    logits = np.array(z)
    p = sm.softmax_stable(logits)
    assert np.abs(sm.softmax_stable(logits + c) - p).max() < sm.SHIFT_TOL
    assert np.isfinite(p).all() and abs(p.sum() - 1.0) < 1e-12
    ref = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
    assert np.abs(p - ref).max() < 1e-12


def test_naive_softmax_overflows_where_stable_does_not() -> None:
    z = np.array([1000.0, 999.0, -1000.0])
    with np.errstate(over="ignore", invalid="ignore"):
        assert not np.isfinite(sm.softmax_naive(z)).all()
    e = np.exp(-1.0)
    np.testing.assert_allclose(sm.softmax_stable(z), [1 / (1 + e), e / (1 + e), 0.0], atol=1e-15)
    # All very negative: naive gives 0/0.
    with np.errstate(under="ignore", invalid="ignore"):
        assert np.isnan(sm.softmax_naive(np.full(3, -1000.0))).all()
    np.testing.assert_allclose(sm.softmax_stable(np.full(3, -1000.0)), np.full(3, 1 / 3))


# ---------------------------------------------------------------- LSTM backward


@pytest.mark.parametrize("sizes", [(1, 1, 1, 1), (3, 4, 5, 2), (7, 5, 12, 3), (2, 8, 30, 1)])
def test_lstm_backward_matches_autograd(sizes: tuple[int, int, int, int]) -> None:
    errors = lb.compare_with_autograd(*sizes, seed=sum(sizes))
    assert set(errors) == {*lb.GRAD_NAMES, "forward"}
    assert max(errors.values()) < 1e-8, errors


def test_lstm_gradcheck_on_manual_cell() -> None:
    gen = torch.Generator().manual_seed(1)
    args = [
        torch.randn(shape, generator=gen, dtype=torch.float64, requires_grad=True)
        for shape in ((3, 2), (3, 5), (3, 5), (20, 2), (20, 5), (20,), (20,))
    ]
    assert torch.autograd.gradcheck(lb.ManualLSTMCell.apply, tuple(args))


def test_lstm_check_reports_pass() -> None:
    result = lb.check_lstm_gradients(sizes=((2, 3, 4, 2),))
    assert result.passed and result.gradcheck_ok
    assert result.max_error < lb.GRAD_TOL


_correct_cell_backward = lb.cell_backward  # kept before the tests below patch the module


def _backward_without_cell_carry(*args):  # type: ignore[no-untyped-def]
    dx, dh_prev, _, gw_ih, gw_hh, gb = _correct_cell_backward(*args)
    return dx, dh_prev, torch.zeros_like(dh_prev), gw_ih, gw_hh, gb


def _backward_through_g_only(dh, dc, x, h_prev, c_prev, gates, tanh_c, p):  # type: ignore[no-untyped-def]
    # The study's step ⑥: dL/dh_{t−1} through the g gate alone.
    outs = _correct_cell_backward(dh, dc, x, h_prev, c_prev, gates, tanh_c, p)
    dx, _, dc_prev, gw_ih, gw_hh, gb = outs
    da, _ = lb.gate_grads(dh, dc, c_prev, gates, tanh_c)
    hidden = h_prev.shape[-1]
    g_rows = slice(2 * hidden, 3 * hidden)
    return dx, da[:, g_rows] @ p.w_hh[g_rows], dc_prev, gw_ih, gw_hh, gb


@pytest.mark.parametrize("broken", [_backward_without_cell_carry, _backward_through_g_only])
def test_study_derivation_errors_are_detected(monkeypatch: pytest.MonkeyPatch, broken) -> None:  # type: ignore[no-untyped-def]
    """Dropping f_{t+1}⊙δc_{t+1}, or the i/f/o paths into h_{t−1}, gives visibly wrong gradients."""
    monkeypatch.setattr(lb, "cell_backward", broken)
    errors = lb.compare_with_autograd(3, 4, 6, 2, seed=3)
    assert errors["w_hh"] > 1e-3
    assert errors["h0"] > 1e-3


# ---------------------------------------------------------------- CLI


def test_cli_conv_worked_example() -> None:
    result = runner.invoke(
        theory_app, ["conv", "--input", "3x28x32", "--filters", "10", "--kernel", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "HxWxD = 24x28x10" in result.output
    assert "WxHxD = 28x24x10" in result.output
    assert "= 760" in result.output


@pytest.mark.parametrize(
    ("extra", "shape", "params"),
    [
        (["--input", "3x28x32", "--padding", "1"], "WxHxD = 30x26x10", "= 760"),
        (["--input", "1x28x32"], "WxHxD = 28x24x10", "= 260"),
        (["--input", "3x28x32", "--no-bias"], "WxHxD = 28x24x10", "= 750"),
        (["--input", "3x28x32", "--stride", "2x1"], "HxWxD = 12x28x10", "= 760"),
    ],
)
def test_cli_conv_variants(extra: list[str], shape: str, params: str) -> None:
    result = runner.invoke(theory_app, ["conv", "--filters", "10", "--kernel", "5", *extra])
    assert result.exit_code == 0, result.output
    assert shape in result.output
    assert params in result.output


def test_cli_conv_pool() -> None:
    result = runner.invoke(theory_app, ["conv", "--input", "3x28x32", "--kernel", "2", "--pool"])
    assert result.exit_code == 0, result.output
    assert "HxWxD = 14x16x3" in result.output
    assert "params  0" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "3x28", "--filters", "10", "--kernel", "5"], "3x28x32"),
        (["--input", "3x4x4", "--filters", "10", "--kernel", "5"], "does not fit"),
        (["--input", "3x28x32", "--kernel", "5"], "--filters"),
        (["--input", "3x28x32", "--filters", "2", "--kernel", "5x5x5"], "--kernel"),
        (["--input", "3x28x32", "--filters", "2", "--kernel", "3", "--stride", "0"], "stride"),
        (["--input", "1x64x64", "--model", "nope"], "resnet18"),
    ],
)
def test_cli_conv_bad_input_raises_archlab_error(args: list[str], message: str) -> None:
    result = runner.invoke(theory_app, ["conv", *args])
    assert isinstance(result.exception, ArchlabError)
    assert message in str(result.exception)


def test_cli_conv_model_walk() -> None:
    pytest.importorskip("archlab.models")
    args = ["conv", "--model", "resnet18", "--input", "1x64x64", "--classes", "3"]
    result = runner.invoke(theory_app, args)
    assert result.exit_code == 0, result.output
    assert "11,171,779 summed over layers, 11,171,779 in model.parameters()" in result.output
    assert "0 mismatches" in result.output
    assert "layer4.1.conv2" in result.output


def test_cli_softmax() -> None:
    result = runner.invoke(theory_app, ["softmax"])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output
    assert "nan" in result.output  # the naive row on ±1000 logits


def test_cli_softmax_failure_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = sm.SoftmaxCheck(1.0, 0.0, 0.0, True, True, passed=False)
    monkeypatch.setattr(theory_cli, "check_softmax", lambda seed: bad)
    result = runner.invoke(theory_app, ["softmax"])
    assert result.exit_code == 1
    assert "FAIL" in result.output


def test_cli_lstm_grad() -> None:
    result = runner.invoke(theory_app, ["lstm-grad"])
    assert result.exit_code == 0, result.output
    assert "lstm gradient check: PASS" in result.output
    assert "dL/dw_hh" in result.output


def test_cli_lstm_grad_failure_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = lb.LSTMGradCheck(((1, 1, 1, 1),), {"w_ih": 1e-3}, 1e-3, True, passed=False)
    monkeypatch.setattr(theory_cli, "check_lstm_gradients", lambda seed: bad)
    result = runner.invoke(theory_app, ["lstm-grad"])
    assert result.exit_code == 1
    assert "1.000e-03" in result.output


def test_an_input_too_big_for_memory_is_not_said_not_to_fit() -> None:
    # A 20000 x 20000 image fits ResNet-18's shapes; its 25.6 GB of activations do not fit the
    # machine: "does not fit the model" sent the user looking for a shape error.
    from torch import nn

    from archlab.errors import ArchlabError
    from archlab.theory.conv import walk_model

    class Greedy(nn.Module):
        def forward(self, x):
            raise RuntimeError(
                "DefaultCPUAllocator: can't allocate memory: you tried to allocate "
                "25600000000 bytes. Error code 12 (Cannot allocate memory)"
            )

    with pytest.raises(ArchlabError, match=r"needs more memory than is free") as e:
        walk_model(Greedy(), (3, 20000, 20000))
    assert "does not fit the model" not in str(e.value)
