"""`archlab theory` subcommands: conv arithmetic, softmax check, LSTM gradient check."""

from __future__ import annotations

import re
from typing import Annotated, Any

import numpy as np
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from archlab.errors import ArchlabError
from archlab.theory.conv import LayerShape, WalkRow, conv_layer, pool_layer, walk_model

# softmax and lstm-grad import their (torch-using) modules when run: `archlab --help` and
# `theory conv` on a layer never load torch.


def check_softmax(seed: int) -> Any:
    from archlab.theory.softmax import check_softmax as check

    return check(seed)


def check_lstm_gradients(seed: int) -> Any:
    from archlab.theory.lstm_backward import check_lstm_gradients as check

    return check(seed=seed)


theory_app = typer.Typer(
    help="Theory tools: conv arithmetic, softmax, LSTM gradients, checked against PyTorch",
    no_args_is_help=True,
    add_completion=False,
)


def parse_dims(text: str, counts: tuple[int, ...], flag: str, example: str) -> tuple[int, ...]:
    """Parse "3x28x32" (or with ×) into ints; ``counts`` lists how many numbers are accepted."""
    parts = re.split(r"[x×X]", text.strip())
    if len(parts) not in counts or not all(re.fullmatch(r"\s*[0-9]+\s*", p) for p in parts):
        raise ArchlabError(f"{flag} expects a form like {example}, got {text!r}")
    return tuple(int(p) for p in parts)


def _pair(text: str, flag: str) -> tuple[int, int]:
    """Parse a per-axis flag: 5 means (5, 5); 5x3 means height 5, width 3."""
    dims = parse_dims(text, (1, 2), flag, "5 or 5x3 (height x width)")
    return (dims[0], dims[0]) if len(dims) == 1 else (dims[0], dims[1])


def _axis_line(label: str, size: int, k: int, s: int, p: int, d: int, out: int) -> str:
    return f"{label:<7} floor(({size} + 2*{p} - {d}*({k} - 1) - 1) / {s}) + 1 = {out}"


Axes = tuple[int, int]  # (height, width)


def _print_layer(
    c: int, h: int, w: int, shape: LayerShape, k: Axes, s: Axes, p: Axes, d: Axes, head: str
) -> None:
    """Print the layer, the formula worked out for each axis, and the output volume."""
    typer.echo(head)
    typer.echo(f"input   CxHxW = {c}x{h}x{w}")
    typer.echo(_axis_line("height", h, k[0], s[0], p[0], d[0], shape.height))
    typer.echo(_axis_line("width", w, k[1], s[1], p[1], d[1], shape.width))
    typer.echo(
        f"output  HxWxD = {shape.height}x{shape.width}x{shape.depth}"
        f"  (WxHxD = {shape.width}x{shape.height}x{shape.depth})"
    )


def _walk_table(model_name: str, rows: list[WalkRow]) -> Table:
    # A light box keeps the table inside 80 columns when output is piped (rich's default width).
    table = Table(title=f"{model_name}: layer by layer (output is CxHxW)", box=box.SIMPLE_HEAD)
    table.add_column("layer", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("output", justify="right", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("formula", no_wrap=True)
    for row in rows:
        if row.formula_shape is None:
            verdict = ""
        elif row.formula_shape == row.output_shape and row.formula_params == row.params:
            verdict = "ok"
        else:
            verdict = "MISMATCH " + "x".join(map(str, row.formula_shape))
        table.add_row(
            row.name,
            row.kind,
            "x".join(map(str, row.output_shape)),
            f"{row.params:,}",
            verdict,
        )
    return table


def _walk(model_name: str, c: int, h: int, w: int, classes: int) -> None:
    # Imported here: the registry builds every model module, which the other commands never need.
    from archlab.models import MODELS

    spec = MODELS.get(model_name)
    if spec is None:
        raise ArchlabError(f"unknown model {model_name!r}; valid models: {', '.join(MODELS)}")
    if spec.task != "images":
        convs = ", ".join(n for n, s in MODELS.items() if s.task == "images")
        raise ArchlabError(f"model {model_name!r} is not a conv net; conv models: {convs}")
    if classes < 1:
        raise ArchlabError(f"--classes must be >= 1, got {classes}")
    model = spec.build(in_channels=c, num_classes=classes)
    rows = walk_model(model, (c, h, w))
    Console().print(_walk_table(model_name, rows))
    walked = sum(r.params for r in rows)
    total = sum(p.numel() for p in model.parameters())
    checked = [r for r in rows if r.formula_shape is not None]
    bad = [r for r in checked if r.formula_shape != r.output_shape or r.formula_params != r.params]
    typer.echo(f"output: {'x'.join(map(str, rows[-1].output_shape))}")
    typer.echo(f"params: {walked:,} summed over layers, {total:,} in model.parameters()")
    typer.echo(f"formula checked on {len(checked)} conv/pool layers, {len(bad)} mismatches")
    if bad or walked != total:
        raise typer.Exit(1)


@theory_app.command()
def conv(
    input_: Annotated[
        str | None, typer.Option("--input", help="input volume CxHxW, e.g. 3x28x32 (C=3, H=28)")
    ] = None,
    filters: Annotated[int | None, typer.Option(help="number of filters D")] = None,
    kernel: Annotated[str | None, typer.Option(help="kernel F or FhxFw")] = None,
    stride: Annotated[
        str | None, typer.Option(help="S or ShxSw [default: 1; the kernel with --pool]")
    ] = None,
    padding: Annotated[str, typer.Option(help="zero padding P or PhxPw per side")] = "0",
    dilation: Annotated[str, typer.Option(help="dilation K or KhxKw")] = "1",
    no_bias: Annotated[bool, typer.Option("--no-bias", help="filters without a bias")] = False,
    pool: Annotated[bool, typer.Option("--pool", help="a pooling layer (0 params)")] = False,
    model: Annotated[
        str | None, typer.Option(help="walk a registered model layer by layer instead")
    ] = None,
    classes: Annotated[int, typer.Option(help="classes of the --model head")] = 3,
) -> None:
    """Output size and parameter count of a conv/pool layer, or of every layer of a model."""
    if input_ is None:
        raise ArchlabError("--input is required, e.g. --input 3x28x32 (CxHxW)")
    c, h, w = parse_dims(input_, (3,), "--input", "3x28x32 (CxHxW)")
    if model is not None:
        if filters is not None or kernel is not None or pool:
            raise ArchlabError("--model walks a whole model; drop --filters/--kernel/--pool")
        _walk(model, c, h, w, classes)
        return
    if kernel is None:
        raise ArchlabError("--kernel is required, e.g. --kernel 5 or --kernel 5x3")
    k = _pair(kernel, "--kernel")
    p, d = _pair(padding, "--padding"), _pair(dilation, "--dilation")
    if pool:
        if filters is not None or no_bias:
            raise ArchlabError("--pool keeps the input depth and has no weights; drop --filters")
        s = k if stride is None else _pair(stride, "--stride")
        shape = pool_layer(h, w, c, k, s, p, d)
        head = f"pool: {k[0]}x{k[1]} window, stride {s[0]}x{s[1]}, padding {p[0]}x{p[1]}"
        _print_layer(c, h, w, shape, k, s, p, d, f"{head}, dilation {d[0]}x{d[1]}")
        typer.echo("params  0 (pooling learns nothing)")
        return
    if filters is None:
        raise ArchlabError("--filters is required for a conv layer (or pass --pool)")
    s = (1, 1) if stride is None else _pair(stride, "--stride")
    shape = conv_layer(h, w, c, filters, k, s, p, d, bias=not no_bias)
    head = f"conv: {filters} filters {k[0]}x{k[1]}, stride {s[0]}x{s[1]}, padding {p[0]}x{p[1]}"
    bias_text = "no bias" if no_bias else "bias"
    _print_layer(c, h, w, shape, k, s, p, d, f"{head}, dilation {d[0]}x{d[1]}, {bias_text}")
    typer.echo(f"params  ({k[0]}*{k[1]}*{c} + {int(not no_bias)})*{filters} = {shape.params:,}")


@theory_app.command()
def softmax(
    seed: Annotated[int, typer.Option(help="seed of the random logits", min=0, max=2**32 - 1)] = 0,
) -> None:
    """Show softmax(z + c) = softmax(z) and that only the naive form overflows; exit 1 if not."""
    from archlab.theory.softmax import SHIFT_TOL, extreme_logits, softmax_naive, softmax_stable

    r = check_softmax(seed)
    z = extreme_logits()[0]
    with np.errstate(over="ignore", invalid="ignore"):
        naive = softmax_naive(z)
    typer.echo(f"logits z = {z.tolist()}")
    typer.echo(f"  naive  exp(z)/sum exp(z)         = {np.array2string(naive, precision=4)}")
    typer.echo(
        f"  stable exp(z-max)/sum exp(z-max) = {np.array2string(softmax_stable(z), precision=4)}"
    )
    checks = (
        ("shift invariance: max |softmax(z+c) - softmax(z)|", r.shift_max_abs_diff),
        ("vs torch.softmax: max |stable - torch|", r.reference_max_abs_diff),
        ("moderate logits: max |naive - stable|", r.naive_agrees_moderate),
    )
    for label, value in checks:
        typer.echo(f"{label:<52} {value:.3e}  {'ok' if value < SHIFT_TOL else 'FAIL'}")
    typer.echo(
        f"{'naive gives nan/inf on +-1000 logits':<52} {r.naive_nonfinite!s:<9}  "
        f"{'ok' if r.naive_nonfinite else 'FAIL'}"
    )
    typer.echo(
        f"{'stable is finite and sums to 1 there':<52} {r.stable_finite!s:<9}  "
        f"{'ok' if r.stable_finite else 'FAIL'}"
    )
    typer.echo(f"softmax check: {'PASS' if r.passed else 'FAIL'} (tolerance {SHIFT_TOL:g})")
    if not r.passed:
        raise typer.Exit(1)


@theory_app.command("lstm-grad")
def lstm_grad(
    seed: Annotated[int, typer.Option(help="seed of weights and inputs", min=0, max=2**32 - 1)] = 0,
) -> None:
    """Hand-written LSTM backward vs autograd (float64); exit 1 if any error exceeds 1e-8."""
    from archlab.theory.lstm_backward import GRAD_TOL

    r = check_lstm_gradients(seed=seed)
    sizes = ", ".join(f"I={i} H={h} T={t} B={b}" for i, h, t, b in r.sizes)
    typer.echo(f"sizes: {sizes}")
    typer.echo("max relative error  max|manual - autograd| / max|autograd|")
    for name, err in r.errors.items():
        label = "h_t (forward)" if name == "forward" else f"dL/d{name}"
        typer.echo(f"  {label:<14} {err:.3e}")
    typer.echo(f"overall max relative error: {r.max_error:.3e} (tolerance {GRAD_TOL:g})")
    typer.echo(
        f"gradcheck (finite differences) on manual cell and sequence: "
        f"{'ok' if r.gradcheck_ok else 'FAIL'}"
    )
    typer.echo(f"lstm gradient check: {'PASS' if r.passed else 'FAIL'}")
    if not r.passed:
        raise typer.Exit(1)
