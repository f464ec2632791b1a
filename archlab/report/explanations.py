"""The report's "What the networks look at": the explanations `archlab explain` wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from archlab.report.blocks import Block, literal, rel


def explanation_blocks(out: Path, report_dir: Path, exps: list[dict[str, Any]]) -> list[Block]:
    """'What the networks look at': the explanations `archlab explain` wrote into the first
    run dir of each experiment (RUN_DIR/explain/explain.json and its pictures)."""
    blocks: list[Block] = []
    for exp in (e for e in exps if e["kind"] == "run"):
        left_out: set[str] = set()  # pictures of nothing (every value 0), said in the note
        where = out / exp["part"] / exp["key"] / exp["runs"][""][0] / "explain"
        if not (where / "explain.json").exists():
            continue
        s = json.loads((where / "explain.json").read_text())
        if s["task"] == "images":
            rho = s.get("gradcam_occlusion_spearman_mean")
            agree = (
                f"; Spearman correlation of the Grad-CAM and occlusion maps: {rho:.2f} "
                "(1 = they rank the pixels alike, 0 = unrelated)"
                if rho is not None
                else ""
            )
            note = (
                f"Grad-CAM on `{s.get('layer', '?')}` over {s['n_test']:,} test images: per "
                f"class the most confident right and wrong predictions{agree}."
            )
        elif s["task"] == "text":
            note = (
                "Integrated gradients on the embedding against an all-padding text; the largest "
                f"completeness gap is {100 * s['completeness_gap_relative_max']:.3f}% of the "
                "logit change."
            )
        else:
            note, left_out = _sales_note(s)
        blocks.append(Block("p", f"{exp['title']} (`{where.parent.name}`): {note}"))
        if s["task"] == "text":
            rows = [["explained", "text", "strongest tokens toward the prediction"]]
            for t in s["texts"]:
                best = sorted(zip(t["attributions"], t["tokens"], strict=True), reverse=True)[:3]
                words = ", ".join(f"{w} ({v:+.2f})" for v, w in best)
                rows.append([literal(t["label"]), t["text"][:90], words])
            blocks.append(Block("table", rows))
            tops = [[literal(c), ", ".join(r["token"] for r in v[:10]) or "none"]
                    for c, v in s.get("class_tokens", {}).items()]  # fmt: skip
            if tops:
                blocks.append(Block("table", [["class", "tokens that push toward it"], *tops]))
            if empty := _empty_classes(s):
                blocks.append(Block("p", empty))
        for f in s["files"]:
            if f.endswith(".png") and f not in left_out:
                blocks.append(Block("img", where / f, f"{exp['key']}: {f[:-4].replace('_', ' ')}"))
        pages = [(f, rel(where / f, report_dir)) for f in s["files"] if f.endswith(".html")]
        if pages:
            blocks.append(Block("links", pages))
    if blocks:
        blocks.insert(0, Block("h3", "What the networks look at"))
    return blocks


def _sales_note(s: dict[str, Any]) -> tuple[str, set[str]]:
    """The sentence on a sales run's explanations and the pictures it leaves out: when every
    attribution or permutation effect is 0 (a correction scale of 0: explain's note), their
    bars and heatmaps are empty, so the sentence says why and the pictures are not shown."""
    imp = s.get("permutation", {})
    ig = s.get("ig_mean_abs_sales", {})
    # Horizon runs score all H steps from one origin; older summaries have no framing.
    horizon = s.get("horizon") if s.get("framing") == "horizon" else None
    what = f"the {horizon}-step test WMAE" if horizon else "test WMAE"
    flat_ig = bool(ig) and all(v == 0 for v in ig.values())
    flat_perm = bool(imp) and all(x["wmae_rise"] == 0 for x in imp.values())
    left_out = {
        f
        for f in s["files"]
        if (flat_ig and f.startswith("ig_")) or (flat_perm and f.startswith("permutation_"))
    }
    gone = " Its plots are left out: every attribution and effect in them is 0." if left_out else ""
    if s.get("note"):  # explain's own words for a run whose network is not used
        return f"{s['note'][0].upper()}{s['note'][1:]}.{gone}", left_out
    top = max(imp, key=lambda g: imp[g]["wmae_rise"]) if imp else ""
    if top and imp[top]["wmae_rise"] > 0:
        rise = imp[top]["wmae_rise"]
        return (f"Shuffling `{top}` raises {what} most: by {rise:,.1f} from "
                f"{s['test_wmae']:,.1f}.{gone}", left_out)  # fmt: skip
    if top:
        return f"Shuffling no feature group raises {what} (no rise above 0).{gone}", left_out
    return f"Integrated gradients by feature group.{gone}", left_out


def _empty_classes(s: dict[str, Any]) -> str:
    """A word on the classes whose 'tokens toward' panel is empty."""
    empty = [literal(c) for c, rows in s.get("class_tokens", {}).items() if not rows]
    if not empty:
        return ""
    n = s.get("n_aggregate")
    texts = f"the {n:,} test texts explained" if n else "the test texts explained"
    return (
        f"The panels toward {' and '.join(empty)} are empty: among {texts}, none predicted as "
        f"{' or '.join(empty)} had a token pushing toward that class."
    )
