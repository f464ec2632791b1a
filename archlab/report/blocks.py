"""Report elements (``Block``) and their two renderings: Markdown and self-contained HTML."""

from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archlab.report import mathmd


@dataclass
class Block:
    """One report element, rendered to both Markdown and HTML."""

    kind: str  # h1 h2 h3 p list table img pre md (a Markdown document) links
    content: Any
    extra: Any = None


def rel(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` (links and images in report.md)."""
    return os.path.relpath(path, start)


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
            # a | in a cell (a class named a|b) would split it: escaped, as Markdown allows
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
            lines.append("")
        elif bl.kind == "img":
            if Path(bl.content).exists():
                lines += [f"![{bl.extra}]({rel(bl.content, report_dir)})", ""]
        elif bl.kind == "pre":
            lines += ["```", bl.content.rstrip(), "```", ""]
        elif bl.kind == "md":
            lines += [_shift_md_headings(bl.content, DOC_HEADING_SHIFT).rstrip(), ""]
        elif bl.kind == "links":
            lines += [" · ".join(f"[{t}]({p})" for t, p in bl.content), ""]
    return "\n".join(lines)


# Tables wrap inside their cells between words only: a cell that is one name
# (test_balanced_accuracy, data/stocks.csv, sales-rnn-smoke) or one number never breaks (.nw),
# since "test_|accuracy" on a phone reads as two words; a table that cannot fit scrolls in its
# own .scroll box. A figure of side-by-side panels (.wide: learning curves) keeps a readable
# width on a phone and scrolls in its own box too. Prose breaks a word (a long path) only when
# it cannot fit on a line of its own.
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1000px;padding:1rem;line-height:1.45;color:#1b1b1b;overflow-wrap:break-word}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.scroll{overflow-x:auto;max-width:100%}table{border-collapse:collapse;font-size:.9rem;
margin:.5rem 0}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;
vertical-align:top;overflow-wrap:normal}
th.nw,td.nw{white-space:nowrap}
th{background:#f3f5f7}img{max-width:100%;height:auto;display:block;margin:.5rem 0}
pre{background:#f6f8fa;padding:.6rem;overflow-x:auto;font-size:.8rem}
code{background:#f3f5f7;padding:0 .2em;border-radius:3px;font-size:.85em}
pre code{background:none;padding:0}
figure{margin:0}figcaption{font-size:.8rem;color:#555}
figure.wide{overflow-x:auto;max-width:100%}figure.wide .hint{display:none}
.doc{border-left:3px solid #e3e6ea;padding-left:1rem}.doc h4{font-size:1.2rem}
.doc h5{font-size:1.05rem}.doc h6{font-size:.95rem}
.doc math[display=block]{overflow-x:auto;max-width:100%;padding:.3rem 0}
.doc table{display:block;overflow-x:auto;max-width:100%}
.doc math:not([display=block]){display:inline-block;max-width:100%;overflow-x:auto;
vertical-align:middle}
mtd[columnalign=right]{text-align:right}mtd[columnalign=left]{text-align:left}
@media (max-width:480px){body{padding:.75rem}table{font-size:.8rem}th,td{padding:.2rem .3rem}}
@media (max-width:640px){figure.wide img{max-width:none;width:var(--phone-width)}
figure.wide .hint{display:inline}}
"""


# Characters Markdown reads as markup; ``literal`` puts a backslash before each.
MD_SPECIAL = "\\`*_[]<>|#!&~"


def literal(text: str) -> str:
    """User text (a class name) for report prose: shown as written in report.md's Markdown and
    in the HTML, never as markup (a class named `x` opened a code span to the next backtick)."""
    return "".join("\\" + c if c in MD_SPECIAL else c for c in str(text))


_INLINE = re.compile(r"\\([" + re.escape(MD_SPECIAL) + r"])|`([^`]+)`|([^\\`]+|[\\`])")


def _inline(text: str) -> str:
    """Escape ``text`` for HTML; `code` spans become <code> (prose, list items, cells), and a
    character ``literal`` escaped shows as itself."""
    out = []
    for m in _INLINE.finditer(text):
        escaped, code, plain = m.groups()
        if code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        else:
            out.append(html.escape(escaped if escaped is not None else plain))
    return "".join(out)


def _cell(text: str, tag: str = "td") -> str:
    # a number never breaks inside; "mean ± std" may break before the ±, and nowhere else
    number = re.fullmatch(r"[-+]?[\d,.]+(e[-+]?\d+)?( ± [\d,.]+(e[-+]?\d+)?)?|—", text)
    if number and tag == "td":
        return f'<td class="num">{_inline(text).replace(" ± ", " ±&nbsp;")}</td>'
    if text.strip() and not re.search(r"\s", text.strip()):  # one name: never broken
        return f'<{tag} class="nw">{_inline(text)}</{tag}>'
    return f"<{tag}>{_inline(text)}</{tag}>"


# A PNG at least this many times wider than high holds panels side by side (learning curves),
# and one at least WIDE_PIXELS wide many small panels (the sample grid's captions): on a phone
# either is drawn at PHONE_SCALE of its pixel width and scrolls in its figure.
WIDE_ASPECT = 2.5
WIDE_PIXELS = 1000  # the sample grid is about 1,050 px once cropped to its content
PHONE_SCALE = 0.6


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG from its header; (0, 0) for anything else."""
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return 0, 0
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _figure(path: Path, caption: str) -> str:
    e = html.escape
    data = base64.b64encode(path.read_bytes()).decode()
    img = f'<img alt="{e(caption)}" src="data:image/png;base64,{data}"'
    width, height = png_size(path)
    if height and (width >= WIDE_ASPECT * height or width >= WIDE_PIXELS):
        return (
            f'<figure class="wide">{img} style="--phone-width:{round(width * PHONE_SCALE)}px">'
            f'<figcaption>{e(caption)}<span class="hint"> (scroll sideways for the other '
            "panels)</span></figcaption></figure>"
        )
    return f"<figure>{img}><figcaption>{e(caption)}</figcaption></figure>"


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
            th = "".join(_cell(h, "th") for h in head)
            trs = "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in rows)
            body.append(
                f'<div class="scroll"><table><thead><tr>{th}</tr></thead>'
                f"<tbody>{trs}</tbody></table></div>"
            )
        elif bl.kind == "img":
            path = Path(bl.content)
            if path.exists():
                body.append(_figure(path, bl.extra))
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
