"""The report's "What the networks look at": the explanations `archlab explain` wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from archlab.report.blocks import Block, rel


def explanation_blocks(out: Path, report_dir: Path, exps: list[dict[str, Any]]) -> list[Block]:
    """'What the networks look at': the explanations `archlab explain` wrote into the first
    run dir of each experiment (RUN_DIR/explain/explain.json and its pictures)."""
    blocks: list[Block] = []
    for exp in (e for e in exps if e["kind"] == "run"):
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
            imp = s.get("permutation", {})
            top = max(imp, key=lambda g: imp[g]["wmae_rise"]) if imp else ""
            # Horizon runs score all H steps from one origin; older summaries have no framing.
            horizon = s.get("horizon") if s.get("framing") == "horizon" else None
            what = f"the {horizon}-step test WMAE" if horizon else "test WMAE"
            note = (
                f"Shuffling `{top}` raises {what} most: by {imp[top]['wmae_rise']:,.1f} "
                f"from {s['test_wmae']:,.1f}."
                if top
                else "Integrated gradients by feature group."
            )
        blocks.append(Block("p", f"{exp['title']} (`{where.parent.name}`): {note}"))
        if s["task"] == "text":
            rows = [["explained", "text", "strongest tokens toward the prediction"]]
            for t in s["texts"]:
                best = sorted(zip(t["attributions"], t["tokens"], strict=True), reverse=True)[:3]
                words = ", ".join(f"{w} ({v:+.2f})" for v, w in best)
                rows.append([t["label"], t["text"][:90], words])
            blocks.append(Block("table", rows))
            tops = [[c, ", ".join(r["token"] for r in v[:10])]
                    for c, v in s.get("class_tokens", {}).items()]  # fmt: skip
            if tops:
                blocks.append(Block("table", [["class", "tokens that push toward it"], *tops]))
        for f in s["files"]:
            if f.endswith(".png"):
                blocks.append(Block("img", where / f, f"{exp['key']}: {f[:-4].replace('_', ' ')}"))
        pages = [(f, rel(where / f, report_dir)) for f in s["files"] if f.endswith(".html")]
        if pages:
            blocks.append(Block("links", pages))
    if blocks:
        blocks.insert(0, Block("h3", "What the networks look at"))
    return blocks
