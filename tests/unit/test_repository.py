"""The repository is self-contained: a clone alone runs the demo, the tests and the
benchmarks (.ci/run proves it by running them in a clone with nothing beside it)."""

import subprocess
from pathlib import Path

from topictag.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def tracked_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [REPO / n for n in names.splitlines()]


OUTSIDE = ".." + "/shared"  # the folder beside the checkout where this project's data once lay


def test_no_file_points_outside_the_repository():
    offenders = []
    for path in tracked_files():
        if path.suffix in {".parquet", ".safetensors", ".png"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if OUTSIDE in text:
            offenders.append(str(path.relative_to(REPO)))
    assert not offenders, f"these mention {OUTSIDE}: {offenders}"


def test_default_paths_stay_inside_the_checkout():
    settings = Settings()
    for path in (settings.paths.bundle_dir, settings.teacher_labels_file, settings.sample_papers_file,
                 settings.shipped_adapter_dir):
        assert path.resolve().is_relative_to(REPO), path
        assert path.exists(), path
