"""Horizon runs' post-hoc knobs, chosen on validation after training: scale and blend weight.

The forecast of a horizon run is ``w x (base + s x correction) + (1 - w) x peer``: s (the
correction scale, data.correction_scale) shrinks the network's correction toward its residual
base, and w (data.blend_weight) mixes the result with the statistical peer's forecast
(data.peer), the hybrid of a network and a classical model. Each is chosen in turn from a
fixed grid by the validation WMAE (the peer fit at the validation origin on the steps up to
it), never on the test, unless the config gives a number. The network alone (test_*) keeps the
scale best for it; the blend (test_blend_*, predict) gets its own, chosen with w as one pair.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from archlab.data import sales_peer
from archlab.metrics import wmae
from archlab.task_configs import SalesDataConfig
from archlab.tasks.base import Batches
from archlab.tasks.sales_common import SalesTargets
from archlab.tasks.sales_horizon_data import PeerInputs

SCALES = tuple(i / 20 for i in range(21))  # correction scales tried: 0, 0.05, ..., 1
BLEND_WEIGHTS = tuple(i / 10 for i in range(11))  # network weights tried: 0, 0.1, ..., 1


def parts(model: nn.Module, val: Batches) -> tuple[torch.Tensor, ...]:
    """(base, correction, targets) of every sample of a split, in scaled units."""
    model.eval()
    parts = []
    with torch.no_grad():
        for i in torch.arange(val.n).split(4096):  # batch by batch: inputs are not kept
            x, cats, b, tg = val.fetch(i, None)
            parts.append((b, model(x, cats), tg))
    return tuple(torch.cat(v) for v in zip(*parts, strict=True))


def scored(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[np.ndarray, ...]:
    """Flat (actual, forecast, holiday, step, origin) of every scored target, sales units."""
    out, t = outputs.double().numpy(), SalesTargets.unpack(targets.double().numpy(), horizon=True)
    ok = t.observed > 0.5
    pred, y = t.to_sales(out), t.sales()
    step = np.broadcast_to(np.arange(1, out.shape[1] + 1), out.shape)
    return y[ok], pred[ok], t.holiday[ok] > 0.5, step[ok], t.origin[ok].astype(int)


def scored_wmae(pred: torch.Tensor, targets: torch.Tensor) -> float:
    """WMAE in sales units of scaled forecasts ``pred`` (N, H) over the observed targets."""
    return wmae(*scored(pred, targets)[:3])


def peer_scaled(forecast: np.ndarray, targets: torch.Tensor) -> torch.Tensor:
    """The peer's (N, H) forecast in sales units as the samples' scaled forecast."""
    t = SalesTargets.unpack(targets.double(), horizon=True)
    return t.to_scaled(torch.from_numpy(np.nan_to_num(forecast))).to(targets.dtype)


def fit_at(peer: PeerInputs, origin: int, horizon: int) -> np.ndarray:
    """The peer's (S, H) forecast from ``origin`` (cached by content: seeds share it)."""
    name, y, args = fit_entry(peer, origin, horizon)
    return sales_peer.forecaster(name)(y, *args)


def fit_entry(peer: PeerInputs, origin: int, horizon: int) -> tuple[str, np.ndarray, tuple]:
    """The peer's fit at ``origin`` for ``horizon`` steps, as (name, panel, arguments) for
    ``sales_peer.forecaster`` and sales_peer.save_fits; with H = 1 its one-step form (raw
    sales, as the rolled peer of the test and validation)."""
    if horizon == 1:
        return rolled(peer, origin, 1)
    return peer.name, peer.y, (origin, horizon, peer.season, peer.groups, peer.rank)


def rolled(peer: PeerInputs, first: int, steps: int) -> tuple[str, np.ndarray, tuple]:
    """The fit of the peer at origin ``first`` rolled ``steps`` steps, as (name, panel,
    arguments) for ``sales_peer.forecaster`` and sales_peer.save_fits."""
    return peer.name + sales_peer.ONE_STEP, peer.y, (first, steps, peer.season)


def choose(
    c: SalesDataConfig, model: nn.Module, val: Batches, peer: PeerInputs | None
) -> tuple[dict[str, Any], list[str]]:
    """The correction scale of the network alone and the blend's weight and scale (chosen on
    validation unless given) with the validation WMAE each rests on, and lines that say so."""
    if not val.n:
        s = 1.0 if c.correction_scale == "auto" else float(c.correction_scale)
        return {"correction_scale": s, "correction_scale_from": "no validation steps"}, [
            f"chosen: no validation steps; correction scale {s:g}, the network alone"
        ]
    base, corr, t = parts(model, val)
    curve = [scored_wmae(base + s * corr, t) for s in SCALES]
    if c.correction_scale == "auto":
        s, src = SCALES[int(np.argmin(curve))], "validation"
    else:
        s, src = float(c.correction_scale), "config"
    out: dict[str, Any] = {
        "correction_scale": s,
        "correction_scale_from": src,
        "correction_scale_val_wmae": scored_wmae(base + s * corr, t),
        "correction_scale_val_wmae_at_1": curve[-1],
        "correction_scale_val_wmae_by_scale": curve,  # correction_scale.json
    }
    lines = [
        f"chosen: correction scale {s:g} ({src}; validation WMAE "
        f"{out['correction_scale_val_wmae']:,.1f}, at 1: {curve[-1]:,.1f})"
        # test_wmae then is the base's number, not a network's (the report says so too)
        + (": the network is not used; the forecasts are the naive base alone" if s == 0 else "")
    ]
    if peer is None or c.blend_weight == 1.0:
        return out, lines
    if c.blend_weight != "auto":
        out.update(
            blend_weight=float(c.blend_weight), blend_correction_scale=s, blend_weight_from="config"
        )
        lines.append(f"chosen: blend {c.blend_weight:g} x network + the rest {peer.name} (config)")
        return out, lines
    if peer.val_origins is None or peer.val_series is None:
        return out, lines
    t0 = time.process_time()
    ps = peer_scaled(
        peer_forecast(peer, peer.val_origins, peer.val_series, t.shape[1], purpose="validation"), t
    )
    fit_seconds = time.process_time() - t0  # ~0 when the seeds of a process share the fit
    # The blend's own scale: with an auto scale, chosen with the weight as one pair (the peer
    # changes which correction is best), so the network alone keeps the scale best for it.
    blend_scales = SCALES if c.correction_scale == "auto" else (s,)
    pairs = [(scored_wmae(w * (base + sb * corr) + (1 - w) * ps, t), sb, w)
             for sb in blend_scales for w in BLEND_WEIGHTS]  # fmt: skip
    best, sb, w = min(pairs)
    by_w = [v for v, b, _ in pairs if b == sb]
    out.update(
        blend_weight=w,
        blend_correction_scale=sb,
        blend_weight_from="validation",
        blend_val_wmae=best,
        blend_network_val_wmae=by_w[-1],
        blend_peer_val_wmae=by_w[0],
        blend_val_wmae_by_weight=by_w,
        blend_peer_fit_seconds=fit_seconds,
    )
    # At scale 0 the network's part is its residual base alone (last season's sales): say so.
    net = f"network (correction scale {sb:g})" if sb else "the naive base (correction scale 0)"
    lines.append(
        f"chosen: blend {w:g} x {net} + {1 - w:g} x {peer.name} (validation WMAE {best:,.1f}; "
        f"{net.split(' (')[0]} alone {by_w[-1]:,.1f} at scale {sb:g}, {peer.name} {by_w[0]:,.1f})"
        # Two scales on two lines: which one the answers use (test_wmae is the network's own).
        + ("; predict and serve answer with this blend" if w < 1 else "")
    )
    return out, lines


def blended(
    chosen: dict[str, Any], peer: PeerInputs | None, base: torch.Tensor, corr: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor | None:  # fmt: skip
    """The test samples' blend (N, H) of network (residual base and correction) and the peer
    at each sample's origin, in scaled units (None: no blend)."""
    w = chosen.get("blend_weight")
    if w is None or peer is None or peer.test_series is None or peer.test_origins is None:
        return None
    ps = peer_forecast(peer, peer.test_origins, peer.test_series, targets.shape[1], test_span(peer))
    return w * (base + chosen["blend_correction_scale"] * corr) + (1 - w) * peer_scaled(ps, targets)


def test_span(peer: PeerInputs) -> tuple[int, int] | None:
    """With rolling origins, the one fit of the test (first origin, steps): the test rows'
    baseline column and the blend read the same one."""
    return (peer.origins[0], len(peer.origins)) if peer.rolling else None


def peer_forecast(
    peer: PeerInputs,
    origins: np.ndarray,
    series: np.ndarray,
    horizon: int,
    span: tuple[int, int] | None = None,
    purpose: str = "the test split",
) -> np.ndarray:
    """The peer's (N, H) forecast in sales units of each sample (its panel row and origin):
    one fit per origin, or with rolling origins one fit at the first (``span``: that fit's
    first origin and steps, else the samples' own), rolled over the rest. ``purpose``: what
    the fit is for, in its line (a run fits for validation, then for test)."""
    first, steps = span or (int(origins.min()), int(origins.max() - origins.min()) + 1)
    fits = np.unique(origins) if not peer.rolling else np.array([first])
    entries = [rolled(peer, first, steps)] if peer.rolling else [
        fit_entry(peer, int(o), horizon) for o in fits
    ]  # fmt: skip
    if not all(sales_peer.is_fitted(name, y, *args) for name, y, args in entries):
        # Minutes on a large panel (5,000 series), with nothing else on the screen meanwhile.
        print(f"archlab: fitting the statistical peer ({peer.name}) on {len(peer.y):,} series, "
              f"{len(entries)} fit(s), for {purpose}", file=sys.stderr, flush=True)  # fmt: skip
    forecasts = [sales_peer.forecaster(name)(y, *args) for name, y, args in entries]
    if peer.rolling:
        return forecasts[0][series, origins - first][:, None]
    out = np.empty((len(origins), horizon))
    for o, fc in zip(fits, forecasts, strict=True):
        at = origins == o
        out[at] = fc[series[at]]
    return out
