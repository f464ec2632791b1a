"""The study report (report/report.md + report/index.html), built only from run directories.

Every number is read from metrics.json / history files written by runs; the study's own numbers
come from archlab/data/study.yaml. The HTML is self-contained (plots embedded as data URIs).
This module holds the report's sections in order; the tables of numbers are in tables.py, the
explanations' section in explanations.py, what is said of the runs' data and of sales networks
left unused in datanotes.py, the Markdown and HTML rendering in blocks.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from archlab import rundir
from archlab.errors import ArchlabError
from archlab.report.blocks import Block, rel, render_html, render_md
from archlab.report.datanotes import (
    blend_without_network_note,
    data_differences,
    unused_network_note,
)
from archlab.report.explanations import explanation_blocks
from archlab.report.tables import (
    blend_without_network,
    ensemble_metrics,
    network_unused,
    read_metrics,
    run_dirs,
    run_table,
    summary_rows,
)
from archlab.utils import write_text_atomic

STUDY_FILE = Path(__file__).resolve().parents[1] / "data" / "study.yaml"
TITLE = "archlab: the deep-learning study, reproduced"  # manifest "title" replaces it (demo)
THEORY_DOC = Path(__file__).resolve().parents[2] / "docs" / "theory.md"
PART_TITLES = {
    "images": "Parts I–II: image classification (VGG-13, ResNet-18)",
    "sales": "Part III: sales forecasting with recurrent networks",
    "text": "Part IV: sentiment classification with LSTMs",
}


def load_study() -> dict[str, Any]:
    return yaml.safe_load(STUDY_FILE.read_text())


def _unused_networks(exp: dict[str, Any], dirs: dict[str, list[Path]]) -> list[Block]:
    """A word beside a sales experiment's numbers on the runs that did not use their network."""
    runs = [d for ds in dirs.values() for d in ds]
    if exp["part"] != "sales" or not runs:
        return []
    pairs = list(zip(runs, read_metrics(runs), strict=True))
    blocks = []
    for test, note in ((network_unused, unused_network_note),
                       (blend_without_network, blend_without_network_note)):  # fmt: skip
        if which := [(d, m) for d, m in pairs if test(m)]:
            who = ("run " if len(which) == 1 else "runs ") + ", ".join(d.name for d, _ in which)
            blocks.append(Block("p", note(who, which[0][1])))
    return blocks


def _experiment_blocks(out: Path, report_dir: Path, exp: dict[str, Any]) -> list[Block]:
    blocks = [Block("h3", exp["title"])]
    dirs = run_dirs(out, exp)
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
        if left := exp.get("left_out"):
            text += (f" The smoke profile runs the first {len(dirs)} techniques only: "
                     f"{', '.join(left)} left out.")  # fmt: skip
        if used := exp.get("committed_cells"):
            text += (f" {len(used)} of the cells were not trained by this command: they were "
                     "read from committed results of an earlier run of the same config on the "
                     f"same data ({next(iter(used.values()))}, ...).")  # fmt: skip
        blocks.append(Block("p", text))
        blocks += _unused_networks(exp, dirs)
        blocks.append(Block("img", abl / "ablation_curves.png", "learning curves per technique"))
        links = [(f"{t} config", d[0] / rundir.CONFIG) for t, d in dirs.items()]
    else:
        blocks.append(Block("table", run_table(exp["part"], dirs[""], ensemble_metrics(out, exp))))
        blocks += _unused_networks(exp, dirs)
        first = dirs[""][0]
        for png in sorted((first / "plots").glob("*.png")):
            blocks.append(Block("img", png, png.stem.replace("_", " ")))
        links = [(f"{d.name} config", d / rundir.CONFIG) for d in dirs[""]]
    blocks.append(Block("links", [(t, rel(p, report_dir)) for t, p in links]))
    return blocks


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
    sales = [  # each sales experiment's runs, to say which of them left the network out
        (exp["title"], read_metrics(run_dirs(ctx.out, exp)[""]))
        for exp in ctx.manifest["experiments"]
        if exp["kind"] == "run" and exp["part"] == "sales"
    ]
    for test, note in ((network_unused, unused_network_note),
                       (blend_without_network, blend_without_network_note)):  # fmt: skip
        if which := [(t, ms[0]) for t, ms in sales if ms and all(test(m) for m in ms)]:
            b.append(Block("p", note(", ".join(t for t, _ in which), which[0][1])))
    if ctx.manifest["skipped"]:
        b.append(Block("list", list(ctx.manifest["skipped"].values())))
    return b


def _differences(ctx: Context) -> list[Block]:
    manifest = ctx.manifest
    b = [Block("h2", "What differs from the study")]
    # the demo states its own data; a study describes what its runs read (their data.json)
    b.append(Block("list", manifest.get("differences") or data_differences(ctx.out, manifest)))
    if manifest.get("profile_note"):  # what the profile changed (written by reproduce)
        b.append(Block("p", manifest["profile_note"]))
    return b


def _parts(ctx: Context) -> list[Block]:
    manifest, b = ctx.manifest, []
    for part, title in PART_TITLES.items():
        exps = [e for e in manifest["experiments"] if e["part"] == part]
        if (
            not exps
            and part not in manifest.get("eda", {})
            and not any(k.startswith(f"{part}/") for k in manifest["skipped"])
        ):
            continue
        b.append(Block("h2", title))
        # the part skipped, or some of its experiments (keyed "part/experiment")
        for key, line in manifest["skipped"].items():
            if key == part or key.startswith(f"{part}/"):
                b.append(Block("p", line))
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
