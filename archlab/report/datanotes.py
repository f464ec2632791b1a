"""What the report says about the data and the networks, read from the run directories.

"What differs from the study" describes the data each part's runs read (their data.json and
inputs.json), not the data the study's reproduction usually reads; a sales run whose network
was not used (correction scale 0) is said so beside its numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from archlab import rundir
from archlab.report.blocks import literal
from archlab.report.tables import COLUMNS, fmt

# ../shared/data/images3/cifar10_dog_automobile_ship.npz: the three CIFAR-10 classes that stand
# in for the study's images (data/README.md there). Only data with this hash is called CIFAR-10.
CIFAR3_SHA256 = "8205b90a35470cadb946feb28abaddbad623ee31566ff3f04ef01da8274d0bb2"
STUDY_IMAGES = (
    "Images: the study's 64×64 three-class set (dogs/food/vehicles, 30,000 images) is not available"
)
STUDY_SALES = (
    "Sales: the study evaluated on a random row split with one row per sample{parity}; "
    "archlab's forecaster splits by time{split} and reports Kaggle's WMAE on the original scale "
    "against naive baselines."
)
STUDY_TEXT = (
    "Text: tweets are grouped by text before splitting, so no text appears in two splits "
    "(the study's random split let repeated tweets leak into its test set){data}."
)


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def part_runs(out: Path, manifest: dict[str, Any], part: str) -> list[Path]:
    """The run directories of ``part`` in the manifest's order (each experiment's first seed)."""
    found = []
    for exp in manifest["experiments"]:
        if exp["part"] == part:
            for runs in exp["runs"].values():
                if runs:
                    found.append(out / exp["part"] / exp["key"] / runs[0])
                    break
    return found


def _splits(info: dict[str, Any]) -> str:
    s = info.get("split_sizes") or {}
    if not {"train", "val", "test"} <= s.keys():
        return ""
    return f"{s['train']:,}/{s['val']:,}/{s['test']:,} (train/validation/test)"


def _is_cifar3(run: Path) -> bool:
    files = _json(run / rundir.INPUTS).get("files") or {}
    return any(isinstance(f, dict) and f.get("sha256") == CIFAR3_SHA256 for f in files.values())


def images_note(run: Path | None) -> str:
    info = _json(run / rundir.DATA) if run else {}
    if not info.get("class_names"):
        return f"{STUDY_IMAGES}; the runs' data.json is missing, so their data are not described."
    names = [literal(n) for n in info["class_names"]]
    if _is_cifar3(run):  # type: ignore[arg-type]
        what = f"three CIFAR-10 classes ({', '.join(names)})"
    else:
        source = info.get("source", "?")
        what = f"the images of `{source}`: {len(names)} classes ({', '.join(names)})"
    size = f"{info['size']}×{info['size']}" if info.get("size") else "their size"
    colour = {1: ", converted to grayscale as in the study", 3: ", in colour"}.get(
        info.get("channels"), ""
    )
    count = f", {info['n_images']:,} images" if info.get("n_images") else ""
    split = _splits(info)
    how = (info.get("split_source") or {}).get("test", "")
    split = f", split {split}" + (f"; test: {how}" if how else "") if split else ""
    return f"{STUDY_IMAGES}; runs use {what} at {size}{colour}{count}{split}."


def sales_note(runs: list[Path], parity: bool) -> str:
    infos = [_json(r / rundir.DATA) for r in runs]
    info = next((i for i in infos if i.get("framing") == "forecast"), {})
    split = ""
    if info.get("test_first_date") and info.get("val_dates"):
        source = (info.get("read") or {}).get("file") or info.get("source", "")
        of = f"{info.get('n_series', '?'):,} series from `{source}`" if source else ""
        test_rows = (info.get("split_target_steps") or {}).get("test")
        rows = f", {test_rows:,} forecasts" if isinstance(test_rows, int) else ""
        split = (
            f" ({of}{'; ' if of else ''}test {info['test_first_date']}.."
            f"{info['test_last_date']}{rows}, validation {info['val_dates']})"
        )
    return STUDY_SALES.format(parity=" (reproduced as 'study parity')" if parity else "",
                              split=split)  # fmt: skip


def text_note(run: Path | None) -> str:
    info = _json(run / rundir.DATA) if run else {}
    data = ""
    if info.get("class_names"):
        n = f"{info['n_samples']:,} texts" if info.get("n_samples") else "texts"
        data = (f"; runs use {n} of `{info.get('source', '?')}` "
                f"({', '.join(map(literal, info['class_names']))})")  # fmt: skip
        if split := _splits(info):
            data += f", split {split}"
    return STUDY_TEXT.format(data=data)


def data_differences(out: Path, manifest: dict[str, Any]) -> list[str]:
    """One line per part that ran: how the data its runs read differ from the study's."""
    lines = []
    if runs := part_runs(out, manifest, "images"):
        lines.append(images_note(runs[0]))
    if runs := part_runs(out, manifest, "sales"):
        parity = any(_json(r / rundir.DATA).get("framing") == "parity" for r in runs)
        lines.append(sales_note(runs, parity))
    if runs := part_runs(out, manifest, "text"):
        lines.append(text_note(runs[0]))
    return lines


# --- sales runs whose network was not used ----------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    numbers = all(isinstance(x, float | int) and not isinstance(x, bool) for x in (a, b))
    return numbers and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def base_baseline(metrics: dict[str, Any]) -> str:
    """The baseline whose test WMAE the run's equals ("" if none does)."""
    for key in COLUMNS["sales"]:
        if key.startswith("baseline_") and _same(metrics.get(key), metrics.get("test_wmae")):
            return key
    return ""


def blend_without_network_note(who: str, metrics: dict[str, Any]) -> str:
    """A paragraph for ``who`` whose blend with the peer left the network out (its correction
    scale 0, chosen on validation), though the network's own forecasts use it."""
    w = metrics.get("blend_weight")
    mix = f" ({w:g} × the naive base + {1 - w:g} × the peer)" if isinstance(w, int | float) else ""
    return (
        f"The blend in {who} does not use the network: its correction scale is 0 (chosen on "
        f"validation), so what `predict` answers{mix} moves with no input of the network. "
        "`test_wmae` is the network's own forecast; `test_blend_wmae` measures base and peer, "
        "and variants of the network (dropout, L2) cannot change it."
    )


def unused_network_note(who: str, metrics: dict[str, Any]) -> str:
    """A paragraph for ``who`` (runs or experiments, one of whose ``metrics`` is given) whose
    network was not used: explain's note for a correction scale of 0, beside the numbers."""
    base = base_baseline(metrics)
    equal = f": `test_wmae` equals `{base}` ({fmt(metrics[base])})" if base else ""
    blend = ""
    if metrics.get("test_blend_wmae") is not None and metrics.get("blend_weight") is not None:
        w = metrics["blend_weight"]
        alone = " (0: the peer alone)" if w == 0 else ""
        blend = (f" `predict` answers with the blend: `test_blend_wmae` "
                 f"{fmt(metrics['test_blend_wmae'])}, `blend_weight` {w:g}{alone}.")  # fmt: skip
    return (
        f"Network not used in {who}: the correction scale is 0 (chosen on validation), so the "
        "forecasts are the naive base alone and no input of the network moves them"
        f"{equal}. These numbers measure that base, not the network.{blend}"
    )
