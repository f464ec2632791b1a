"""Markdown with LaTeX math to HTML: python-markdown for the text, latex2mathml for the math.

Math becomes MathML, which browsers render natively, so the report stays one offline file.
``$$...$$`` is display math and ``$...$`` inline math; code spans and fenced code blocks keep
their dollars (``$ archlab theory ...``), because python-markdown handles those first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as etree

import markdown
from latex2mathml.converter import convert
from markdown.extensions import Extension
from markdown.inlinepatterns import InlineProcessor
from markdown.treeprocessors import Treeprocessor

# Display math may span lines within one paragraph; inline math stays on one line and does
# not start or end with a space (so "costs $5 and $6" is left alone).
DISPLAY = r"\$\$(.+?)\$\$"
INLINE = r"(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\d)"
# latex2mathml has no `aligned`; an {rl} array is the same layout (right | left of the &).
ALIASES = ((r"\begin{aligned}", r"\begin{array}{rl}"), (r"\end{aligned}", r"\end{array}"))


class _Math(InlineProcessor):
    def __init__(self, pattern: str, md: markdown.Markdown, display: str) -> None:
        super().__init__(pattern, md)
        self.display = display

    def handleMatch(self, m: re.Match, data: str) -> tuple[str, int, int]:
        latex = m.group(1).strip()
        for old, new in ALIASES:
            latex = latex.replace(old, new)
        mathml = convert(latex, display=self.display)
        # stashed HTML is inserted verbatim: no emphasis or escaping inside the MathML
        return self.md.htmlStash.store(mathml), m.start(0), m.end(0)


class MathExtension(Extension):
    """``$$...$$`` and ``$...$`` to MathML (after code spans, before backslash escapes)."""

    def extendMarkdown(self, md: markdown.Markdown) -> None:
        md.inlinePatterns.register(_Math(DISPLAY, md, "block"), "math-display", 186)
        md.inlinePatterns.register(_Math(INLINE, md, "inline"), "math-inline", 185)


def to_html(text: str, shift_headings: int = 0) -> str:
    """Render Markdown ``text`` (tables, fenced code, math) to an HTML fragment.

    ``shift_headings`` moves every heading down that many levels (a document's ``#`` title
    becomes an ``<h4>`` under the report's own ``<h3>``), capped at ``<h6>``.
    """
    md = markdown.Markdown(extensions=["tables", "fenced_code", MathExtension()])
    if shift_headings:
        md.treeprocessors.register(_Shift(md, shift_headings), "shift-headings", 0)
    return md.convert(text)


class _Shift(Treeprocessor):
    def __init__(self, md: markdown.Markdown, by: int) -> None:
        super().__init__(md)
        self.by = by

    def run(self, root: etree.Element) -> None:
        for el in root.iter():
            if re.fullmatch(r"h[1-6]", el.tag):
                el.tag = f"h{min(6, int(el.tag[1]) + self.by)}"
