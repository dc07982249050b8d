"""The adapter that ships with topictag: SmolLM2-135M-Instruct distilled from the bundled
teacher labels (``data/adapter``, rebuilt by ``make shipped-adapter``).

On first start, with nothing in the registry yet, it becomes production version v1, so the
first paper a new installation tags is tagged by a distilled student rather than the base
model (which answers with sentences, copies of the title or of the prompt's examples). Later
versions are trained and promoted over it by the usual rule: only when they score better.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from topictag.adapters.registry import AdapterRefused, AdapterRegistry, adapter_sha256, check_adapter_files
from topictag.settings import Settings
from topictag.store.models import AdapterVersion

log = logging.getLogger(__name__)

SHIPPED_VERSION = "v1"


def shipped_adapter_info(path: Path) -> dict:
    """What ``metrics.json`` beside the shipped adapter records (scores, sha256, training)."""
    file = Path(path) / "metrics.json"
    return json.loads(file.read_text()) if file.exists() else {}


def trained_for(path: Path) -> str:
    config = json.loads((Path(path) / "adapter_config.json").read_text())
    return Path(str(config.get("base_model_name_or_path") or "")).name


def seed_shipped_adapter(registry: AdapterRegistry, settings: Settings) -> AdapterVersion | None:
    """Put the shipped adapter in production if the registry is empty; returns the row it
    added, or None when there was nothing to do (turned off, versions exist, another base
    model, no adapter in the bundle). Safe when several services start at once."""
    path = settings.shipped_adapter_dir
    base_model = settings.student.model_name
    if not settings.student.shipped_adapter or registry.list():
        return None
    if not (path / "adapter_config.json").is_file():
        log.warning("no shipped adapter at %s: the base model tags until a trained one is promoted", path)
        return None
    made_for = trained_for(path)
    if made_for != Path(base_model).name:
        log.info("shipped adapter is for %s, not %s: not used", made_for, base_model)
        return None
    check_adapter_files(path)
    info = shipped_adapter_info(path)
    sha = adapter_sha256(path)
    if info.get("sha256") and info["sha256"] != sha:
        raise AdapterRefused(f"shipped adapter at {path}: checksum differs from its metrics.json")
    # A copy among the other versions: the registry's row stays valid when the bundle moves or
    # a newer release ships another adapter.
    copy = _copy_into(path, sha, settings.adapters_dir / SHIPPED_VERSION)
    try:
        registry.register(
            SHIPPED_VERSION,
            copy,
            base_model=base_model,
            metrics=info.get("metrics", {}),
            training_config=info.get("train_config", {}),
            label_snapshot={"source": "shipped", "n_train": info.get("n_train"), "n_eval": info.get("n_eval")},
        )
    except IntegrityError:  # another service seeded it first
        return None
    row = registry.promote(SHIPPED_VERSION, "shipped with topictag: distilled from the bundled teacher labels",
                           base_model)
    log.info("shipped adapter %s (%s) is in production", row.version, row.sha256[:12])
    return row


def _copy_into(source: Path, sha: str, target: Path) -> Path:
    """``source`` (whose checksum is ``sha``) copied to ``target`` whole (staged, then
    renamed); an identical copy that is already there is kept."""
    if target.is_dir() and any(target.iterdir()):
        if adapter_sha256(target) != sha:
            raise AdapterRefused(f"{target} exists and holds another adapter than {source}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        if target.exists():
            target.rmdir()  # empty, checked above
        try:
            os.rename(staging, target)
        except OSError:  # another service renamed its copy first
            if adapter_sha256(target) != sha:
                raise
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)
