"""mkdocs hook: fills the configuration and presets pages from the code (archlab.reference)."""

from __future__ import annotations

from typing import Any

from archlab.reference import config_reference, presets_reference

MARKERS = {
    "<!-- generated: config-reference -->": config_reference,
    "<!-- generated: presets -->": presets_reference,
}


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
