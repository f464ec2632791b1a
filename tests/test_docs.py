"""The README's shape and the docs site: short README, its two commands first, a strict build."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def test_readme_is_short_and_starts_with_the_two_commands() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    first_block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first_block and text.index(first_block.group(0)) < text.index("\n## ")
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make demo", "make test"]


def test_readme_links_and_images_point_at_files() -> None:
    text = README.read_text()
    targets = re.findall(r"\]\(([^)#\s]+)", text) + re.findall(r'src="([^"]+)"', text)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links to the docs"
    assert [t for t in local if not (REPO / t).exists()] == []


def test_every_docs_page_is_in_the_nav() -> None:
    # mkdocs only logs (INFO) a page left out of the nav; such a page is unreachable.
    config = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=yaml.SafeLoader)

    def pages(nav: list) -> list[str]:
        out: list[str] = []
        for item in nav:
            for value in item.values():
                out += pages(value) if isinstance(value, list) else [value]
        return out

    nav = pages(config["nav"])
    assert sorted(nav) == sorted(p.name for p in (REPO / "docs").glob("*.md"))


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs and mkdocs-material are not installed (pip install -e '.[docs]'; make does)",
)
def test_the_site_builds_strict(tmp_path: Path) -> None:
    """Broken links and anchors fail the build; the generated pages are filled."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    config = (tmp_path / "configuration" / "index.html").read_text()
    assert "data.series_keys" in config and "generated:" not in config
    assert "images-resnet18-long" in (tmp_path / "presets" / "index.html").read_text()
    assert "<math" in (tmp_path / "theory" / "index.html").read_text()  # MathML, offline


def test_lists_start_after_a_blank_line() -> None:
    """python-markdown (the site and the report) runs a list into a paragraph that it follows
    without a blank line, where GitHub starts a list."""
    glued = []
    for page in sorted((REPO / "docs").glob("*.md")):
        fenced, previous = False, ""
        for n, line in enumerate(page.read_text().splitlines(), 1):
            fenced ^= line.startswith("```")
            item = re.match(r"(- |\d+\. )", line)
            if (
                not fenced
                and item
                and previous.strip()
                and not re.match(r"(- |\d+\. |  |\|)", previous)
            ):
                glued.append(f"{page.name}:{n}")
            previous = line
    assert glued == []
