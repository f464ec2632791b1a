"""The study report (report/report.md + report/index.html), built only from run directories.

Every number is read from metrics.json / history files written by runs; the study's own numbers
come from archlab/data/study.yaml. The HTML is self-contained (plots embedded as data URIs).
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from archlab import rundir
from archlab.errors import ArchlabError
from archlab.presets import LONG, QUICK
from archlab.report import mathmd
from archlab.utils import write_text_atomic

STUDY_FILE = Path(__file__).resolve().parents[1] / "data" / "study.yaml"
TITLE = "archlab: the deep-learning study, reproduced"  # manifest "title" replaces it (demo)
THEORY_DOC = Path(__file__).resolve().parents[2] / "docs" / "theory.md"
PART_TITLES = {
    "images": "Parts I–II: image classification (VGG-13, ResNet-18)",
    "sales": "Part III: sales forecasting with recurrent networks",
    "text": "Part IV: sentiment classification with LSTMs",
}
# metrics.json keys shown per part, in order, when present.
COLUMNS = {
    "images": [
        "test_accuracy",
        "test_balanced_accuracy",
        "test_f1_macro",
        "test_precision_macro",
        "test_recall_macro",
        "epochs_run",
        "train_seconds",
    ],
    "text": [
        "test_accuracy",
        "test_balanced_accuracy",
        "test_f1_macro",
        "baseline_tfidf_accuracy",
        "baseline_tfidf_f1_macro",
        "epochs_run",
        "train_seconds",
    ],
    "sales": [
        "test_wmae",
        "test_mae",
        "test_rmse",
        "test_r2",
        "test_rmse_std",
        "test_r2_std",
        "baseline_last_step_wmae",
        "baseline_seasonal_naive_wmae",
        "baseline_mean_wmae",
        "epochs_run",
        "train_seconds",
    ],
}
MAIN_METRIC = {"images": "test_accuracy", "text": "test_accuracy", "sales": "test_wmae"}
DIFFERENCES = [
    "Images: the study's 64×64 three-class set (dogs/food/vehicles, 30,000 images) is not "
    "available; runs use three CIFAR-10 classes (dog, automobile, ship) at 32×32, 18,000 images, "
    "split 70/15/15 stratified (12,600/2,700/2,700), converted to grayscale as in the study.",
    "Sales: the study evaluated on a random row split with one row per sample (reproduced as "
    "'study parity'); archlab's default forecaster splits by time (last 39 weeks test, 13 before "
    "validation) and reports Kaggle's WMAE on the original scale against naive baselines.",
    "Text: tweets are grouped by text before splitting, so no text appears in two splits "
    "(the study's random split let repeated tweets leak into its test set).",
]


@dataclass
class Block:
    """One report element, rendered to both Markdown and HTML."""

    kind: str  # h1 h2 h3 p list table img pre md (a Markdown document) links
    content: Any
    extra: Any = None


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.4f}"
    return str(v)


def _mean_std(values: list[float]) -> str:
    arr = np.asarray(values, dtype=float)
    if len(arr) == 1:
        return _fmt(float(arr[0]))
    return f"{_fmt(float(arr.mean()))} ± {_fmt(float(arr.std(ddof=1)))}"


def load_study() -> dict[str, Any]:
    return yaml.safe_load(STUDY_FILE.read_text())


def _run_dirs(out: Path, exp: dict[str, Any]) -> dict[str, list[Path]]:
    base = out / exp["part"] / exp["key"]
    return {t: [base / r for r in runs] for t, runs in exp["runs"].items()}


def _metrics(dirs: list[Path]) -> list[dict[str, Any]]:
    return [rundir.read_metrics(d) for d in dirs]


def summary_rows(out: Path, manifest: dict[str, Any], study: dict[str, Any]) -> list[list[str]]:
    """One row per experiment (per study number it is compared with)."""
    rows = []
    for exp in manifest["experiments"]:
        dirs = _run_dirs(out, exp)
        if exp["kind"] == "ablation":
            key = MAIN_METRIC[exp["part"]]
            means = {t: float(np.mean([m[key] for m in _metrics(ds)])) for t, ds in dirs.items()}
            pick = min if key.endswith("wmae") else max
            best = pick(means, key=means.__getitem__)
            rows.append([exp["title"], key, f"best: {best} {_fmt(means[best])}", "—", "—"])
            continue
        ms = _metrics(dirs[""])
        keys = [study["results"][s]["metric"] for s in exp["study"]] or [MAIN_METRIC[exp["part"]]]
        ens = _ensemble(out, exp)
        for i, key in enumerate(keys):
            vals = [m[key] for m in ms if m.get(key) is not None]
            variants = [(exp["title"], vals, _mean_std(vals) if vals else "n/a")]
            if ens.get(key) is not None:
                title = f"{exp['title']}, {len(ms)} seeds averaged"
                variants.append((title, [ens[key]], _fmt(ens[key])))
            for title, values, ours in variants:
                if not exp["study"]:
                    rows.append([title, key, ours, "—", "—"])
                    continue
                ref = study["results"][exp["study"][i]]
                diff = float(np.mean(values)) - ref["value"] if values else float("nan")
                better = (diff < 0) if ref.get("lower_is_better") else (diff > 0)
                rows.append([title, key, ours, _fmt(ref["value"]),
                             f"{diff:+.4f} ({'better' if better else 'worse'})"])  # fmt: skip
    return rows


def _ensemble(out: Path, exp: dict[str, Any]) -> dict[str, float]:
    """The test metrics of the seeds' averaged prediction (reproduce.seed_ensemble), or {}."""
    if not exp.get("ensemble"):
        return {}
    path = out / exp["part"] / exp["key"] / exp["ensemble"]
    return json.loads(path.read_text())["ensemble"] if path.exists() else {}


def _experiment_blocks(out: Path, report_dir: Path, exp: dict[str, Any]) -> list[Block]:
    blocks = [Block("h3", exp["title"])]
    dirs = _run_dirs(out, exp)
    if exp["kind"] == "ablation":
        abl = out / exp["part"] / exp["key"]
        md = (abl / "ablation.md").read_text() if (abl / "ablation.md").exists() else ""
        rows = [r.strip("|").split("|") for r in md.strip().splitlines()]
        if len(rows) > 2:
            blocks.append(Block("table", [[c.strip() for c in r] for r in [rows[0], *rows[2:]]]))
        text = (f"Each technique alone on top of preset `{exp['preset']}` with every other "
                "regularizer off; mean ± std over seeds.")  # fmt: skip
        if "verdict" in md:  # archlab.ablate's paired columns (2 seeds or more)
            text += (" Δ is the technique's test score minus the baseline's on the same seed and "
                     "split, averaged over seeds, with a 95% Student-t interval over those paired "
                     "differences; it helps or hurts when the interval excludes 0.")  # fmt: skip
        blocks.append(Block("p", text))
        blocks.append(Block("img", abl / "ablation_curves.png", "learning curves per technique"))
        links = [(f"{t} config", d[0] / rundir.CONFIG) for t, d in dirs.items()]
    else:
        blocks.append(Block("table", run_table(exp["part"], dirs[""], _ensemble(out, exp))))
        first = dirs[""][0]
        for png in sorted((first / "plots").glob("*.png")):
            blocks.append(Block("img", png, png.stem.replace("_", " ")))
        links = [(f"{d.name} config", d / rundir.CONFIG) for d in dirs[""]]
    blocks.append(Block("links", [(t, _rel(p, report_dir)) for t, p in links]))
    return blocks


def run_table(part: str, dirs: list[Path], ens: dict[str, float]) -> list[list[str]]:
    """One row per metric, one column per run (then mean ± std and the seeds' average).

    Metrics down and runs across: a part has up to a dozen metrics (baselines, epochs_run,
    train_seconds) but only a few seeds, so the table stays as narrow as the page.
    """
    ms = _metrics(dirs)  # read each metric file once
    cols = [c for c in COLUMNS[part] if any(c in m for m in ms)]
    head = ["metric", *[d.name for d in dirs]]
    if len(ms) > 1:
        head.append("mean ± std")
    if ens:  # metrics of the averaged prediction; baselines and timings are per run
        head.append("seeds averaged")
    table = [head]
    for c in cols:
        row = [c, *[_fmt(m.get(c)) for m in ms]]
        if len(ms) > 1:
            row.append(_mean_std([m[c] for m in ms if c in m]))
        if ens:
            row.append(_fmt(ens[c]) if c in ens else "—")
        table.append(row)
    return table


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
            note = (
                f"Shuffling `{top}` raises test WMAE most: by {imp[top]['wmae_rise']:,.1f} "
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
        pages = [(f, _rel(where / f, report_dir)) for f in s["files"] if f.endswith(".html")]
        if pages:
            blocks.append(Block("links", pages))
    if blocks:
        blocks.insert(0, Block("h3", "What the networks look at"))
    return blocks


def _rel(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path, start)


@dataclass(frozen=True)
class Context:
    """What every report section reads: the output dir, its manifest and the study's numbers."""

    out: Path
    report_dir: Path
    manifest: dict[str, Any]
    study: dict[str, Any]


def _header(ctx: Context) -> list[Block]:
    manifest = ctx.manifest
    b = [Block("h1", manifest.get("title", TITLE))]
    source = f", data from `{manifest['data_dir']}`" if manifest.get("data_dir") else ""
    b.append(
        Block(
            "p",
            f"Profile `{manifest['profile']}`, {manifest['seeds']} seed(s) per "
            f"experiment{source}. Every number below "
            "is read from the run directories; the study's numbers come from "
            "`archlab/data/study.yaml`.",
        )
    )
    if manifest.get("data"):  # what each part trained on, when it is not the study's data
        b.append(Block("list", [f"{PART_TITLES[k]}: {v}" for k, v in manifest["data"].items()]))
    return b


def _summary(ctx: Context) -> list[Block]:
    head = ["experiment", "metric", "archlab (mean ± std)", "study", "difference"]
    b = [
        Block("h2", "Summary"),
        Block("table", [head, *summary_rows(ctx.out, ctx.manifest, ctx.study)]),
        Block("p", "Study source: " + ctx.study["citation"]),
    ]
    if ctx.manifest["skipped"]:
        b.append(Block("list", list(ctx.manifest["skipped"].values())))
    return b


def _differences(ctx: Context) -> list[Block]:
    manifest = ctx.manifest
    b = [Block("h2", "What differs from the study")]
    b.append(Block("list", manifest.get("differences", DIFFERENCES)))
    if manifest.get("profile_note"):
        b.append(Block("p", manifest["profile_note"]))
    elif manifest["profile"] in ("smoke", "quick", "long"):
        note = {
            "smoke": "Smoke profile: tiny slices, 2 epochs of 3 steps; numbers are not results.",
            "quick": "Quick profile: "
            + "; ".join(f"{k}: {', '.join(v)}" for k, v in QUICK.items()),
            "long": "Long profile (the full one, with the tuned image recipes trained longer): "
            + "; ".join(f"{k}: {', '.join(v)}" for k, v in LONG.items()),
        }
        b.append(Block("p", note[manifest["profile"]]))
    return b


def _parts(ctx: Context) -> list[Block]:
    manifest, b = ctx.manifest, []
    for part, title in PART_TITLES.items():
        exps = [e for e in manifest["experiments"] if e["part"] == part]
        if not exps and part not in manifest.get("eda", {}):
            continue
        b.append(Block("h2", title))
        if part in manifest["skipped"]:
            b.append(Block("p", manifest["skipped"][part]))
        for exp in exps:
            b += _experiment_blocks(ctx.out, ctx.report_dir, exp)
        b += explanation_blocks(ctx.out, ctx.report_dir, exps)
        eda = manifest.get("eda", {}).get(part, [])
        if eda:
            b.append(Block("h3", "Exploratory plots"))
            b += [Block("img", ctx.out / p, Path(p).stem.replace("_", " ")) for p in eda]
    return b


def _model_summaries(ctx: Context) -> list[Block]:
    b = [Block("h2", "Model summaries")]
    for s in ctx.manifest.get("summaries", []):
        classes = f", {s['classes']} classes" if s.get("classes") else ""
        b.append(Block("h3", f"{s['model']} (input {s['input']}{classes})"))
        b.append(Block("pre", (ctx.out / s["file"]).read_text()))
    return b


def _theory(ctx: Context) -> list[Block]:
    b = [Block("h2", "Part V: theory, computed and checked")]
    live: dict[str, str] = {}
    for t in ctx.manifest.get("theory", []):
        status = "passed" if t["exit_code"] == 0 else f"FAILED (exit {t['exit_code']})"
        live[t["command"]] = (ctx.out / t["file"]).read_text()
        b.append(Block("h3", f"{t['title']} — {status}"))
        b.append(Block("pre", f"$ {t['command']}\n" + live[t["command"]]))
    if THEORY_DOC.exists():
        b.append(Block("h3", "Derivations (docs/theory.md)"))
        b.append(
            Block(
                "p",
                "The outputs of the commands run above are shown as this report's runs printed "
                "them; the document's other examples are quoted from it.",
            )
        )
        b.append(Block("md", with_live_outputs(THEORY_DOC.read_text(), live)))
    return b


def with_live_outputs(doc: str, live: dict[str, str]) -> str:
    """``doc`` with each fenced block that starts ``$ <command>`` replaced by ``live[command]``.

    The last digits of float64 rounding errors depend on the BLAS and thread count, so the
    report shows what this machine printed, not what the document's author's machine did.
    """

    def swap(m: re.Match) -> str:
        cmd = m.group(1)
        return f"```\n$ {cmd}\n{live[cmd].rstrip()}\n```" if cmd in live else m.group(0)

    return re.sub(r"^```\n\$ ([^\n]+)\n.*?^```", swap, doc, flags=re.S | re.M)


# The report's sections in order; each reads the context and returns its blocks.
SECTIONS: tuple[Callable[[Context], list[Block]], ...] = (
    _header,
    _summary,
    _differences,
    _parts,
    _model_summaries,
    _theory,
)


def build_report(out: Path) -> Path:
    """Write out/report/report.md and out/report/index.html from out/manifest.json."""
    out = Path(out)
    mpath = out / "manifest.json"
    if not mpath.exists():
        raise ArchlabError(f"{out}: no manifest.json; run `archlab reproduce` first")
    report_dir = out / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(out, report_dir, json.loads(mpath.read_text()), load_study())
    blocks = [bl for section in SECTIONS for bl in section(ctx)]
    write_text_atomic(report_dir / "report.md", render_md(blocks, report_dir))
    write_text_atomic(report_dir / "index.html", render_html(blocks))
    return report_dir


# Derivation documents start at '#'; in the report they sit under an h3.
DOC_HEADING_SHIFT = 3


def _shift_md_headings(text: str, by: int) -> str:
    """Markdown ``text`` with ATX headings outside code fences moved ``by`` levels down."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        m = None if fenced else re.match(r"(#{1,6}) ", line)
        lines.append("#" * min(6, len(m.group(1)) + by) + line[len(m.group(1)) :] if m else line)
    return "\n".join(lines)


def render_md(blocks: list[Block], report_dir: Path) -> str:
    lines: list[str] = []
    for bl in blocks:
        if bl.kind in ("h1", "h2", "h3"):
            lines += ["#" * int(bl.kind[1]) + " " + bl.content, ""]
        elif bl.kind == "p":
            lines += [bl.content, ""]
        elif bl.kind == "list":
            lines += [f"- {x}" for x in bl.content] + [""]
        elif bl.kind == "table":
            head, *rows = bl.content
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "---|" * len(head))
            lines += ["| " + " | ".join(r) + " |" for r in rows]
            lines.append("")
        elif bl.kind == "img":
            if Path(bl.content).exists():
                lines += [f"![{bl.extra}]({_rel(bl.content, report_dir)})", ""]
        elif bl.kind == "pre":
            lines += ["```", bl.content.rstrip(), "```", ""]
        elif bl.kind == "md":
            lines += [_shift_md_headings(bl.content, DOC_HEADING_SHIFT).rstrip(), ""]
        elif bl.kind == "links":
            lines += [" · ".join(f"[{t}]({p})" for t, p in bl.content), ""]
    return "\n".join(lines)


# Tables wrap inside their cells (long metric names break at underscores) instead of pushing
# the page wider; .scroll is a last resort for a table that still cannot fit.
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1000px;padding:1rem;line-height:1.45;color:#1b1b1b}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.scroll{overflow-x:auto;max-width:100%}table{border-collapse:collapse;font-size:.9rem;
margin:.5rem 0}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;
vertical-align:top;overflow-wrap:anywhere}td.num{overflow-wrap:normal}
th{background:#f3f5f7}img{max-width:100%;height:auto;display:block;margin:.5rem 0}
pre{background:#f6f8fa;padding:.6rem;overflow-x:auto;font-size:.8rem}
code{background:#f3f5f7;padding:0 .2em;border-radius:3px;font-size:.85em}
pre code{background:none;padding:0}
figure{margin:0}figcaption{font-size:.8rem;color:#555}
.doc{border-left:3px solid #e3e6ea;padding-left:1rem}.doc h4{font-size:1.2rem}
.doc h5{font-size:1.05rem}.doc h6{font-size:.95rem}
.doc math[display=block]{overflow-x:auto;max-width:100%;padding:.3rem 0}
mtd[columnalign=right]{text-align:right}mtd[columnalign=left]{text-align:left}
"""


def _inline(text: str) -> str:
    """Escape ``text`` for HTML; `code` spans become <code> (prose, list items, cells)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _cell(text: str) -> str:
    # a number never breaks inside; "mean ± std" may break before the ±, and nowhere else
    number = re.fullmatch(r"[-+]?[\d,.]+(e[-+]?\d+)?( ± [\d,.]+(e[-+]?\d+)?)?|—", text)
    if number:
        return f'<td class="num">{_inline(text).replace(" ± ", " ±&nbsp;")}</td>'
    return f"<td>{_inline(text)}</td>"


def render_html(blocks: list[Block]) -> str:
    e = html.escape
    body: list[str] = []
    for bl in blocks:
        if bl.kind in ("h1", "h2", "h3"):
            body.append(f"<{bl.kind}>{e(bl.content)}</{bl.kind}>")
        elif bl.kind == "p":
            body.append(f"<p>{_inline(bl.content)}</p>")
        elif bl.kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in bl.content) + "</ul>")
        elif bl.kind == "table":
            head, *rows = bl.content
            th = "".join(f"<th>{_inline(h)}</th>" for h in head)
            trs = "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in rows)
            body.append(
                f'<div class="scroll"><table><thead><tr>{th}</tr></thead>'
                f"<tbody>{trs}</tbody></table></div>"
            )
        elif bl.kind == "img":
            path = Path(bl.content)
            if path.exists():
                data = base64.b64encode(path.read_bytes()).decode()
                body.append(
                    f'<figure><img alt="{e(bl.extra)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{e(bl.extra)}</figcaption></figure>"
                )
        elif bl.kind == "pre":
            body.append(f"<pre>{e(bl.content)}</pre>")
        elif bl.kind == "md":
            body.append(f'<div class="doc">{mathmd.to_html(bl.content, DOC_HEADING_SHIFT)}</div>')
        elif bl.kind == "links":
            links = " · ".join(f'<a href="{e(p)}">{_inline(t)}</a>' for t, p in bl.content)
            body.append(f"<p>{links}</p>")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>archlab report</title><style>{CSS}</style></head><body><main>"
        + "\n".join(body)
        + "</main></body></html>\n"
    )
