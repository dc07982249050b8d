"""The documentation stays in step with the code: the generated references (docs/settings.md,
docs/cli.md) are what the generators print now, the README stays short, and every relative
link in README.md and docs/*.md points at a file (and, for Markdown, a heading) that exists."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from topictag.settings_doc import settings_reference

REPO = Path(__file__).resolve().parents[2]
TYPER_DOCS = ["-m", "typer", "topictag.cli", "utils", "docs", "--name", "topictag", "--output"]
CLI_REGENERATE = ".venv/bin/typer topictag.cli utils docs --name topictag --output docs/cli.md"

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def test_settings_reference_is_current():
    assert (REPO / "docs" / "settings.md").read_text(encoding="utf-8") == settings_reference(), (
        "docs/settings.md is out of date: run `.venv/bin/topictag settings > docs/settings.md`"
    )


def test_cli_reference_is_current(tmp_path):
    out = tmp_path / "cli.md"
    env = {**os.environ, "COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}
    subprocess.run([sys.executable, *TYPER_DOCS, str(out)], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=120)
    assert (REPO / "docs" / "cli.md").read_text(encoding="utf-8") == out.read_text(encoding="utf-8"), (
        f"docs/cli.md is out of date: run `{CLI_REGENERATE}`"
    )


def test_readme_is_short():
    size = (REPO / "README.md").stat().st_size
    assert size <= 12_000, f"README.md is {size} bytes; move detail to docs/ (at most 12,000)"


def _docs() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    text = FENCE.sub("", doc.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _links(doc: Path) -> list[str]:
    text = FENCE.sub("", doc.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    return LINK.findall(text)


@pytest.mark.parametrize("doc", _docs(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc):
    broken = []
    for target in _links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.is_relative_to(REPO):
            broken.append(f"{target} (outside the repository)")
            continue
        name = file.relative_to(REPO).as_posix()
        if not file.exists():
            broken.append(f"{target} (no such file)")
            continue
        if anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target} (no such heading in {name})")
    assert not broken, f"{doc.relative_to(REPO)}: broken links: {broken}"
