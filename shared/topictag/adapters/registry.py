"""The adapter registry: immutable LoRA versions, their metrics, and which one is in
production. The store is the source of truth; promotions and rollbacks are also announced
on the ``models`` topic so every tagger switches within seconds."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from topictag.lifecycle import AdapterStatus
from topictag.store import Store
from topictag.store.engine import utcnow
from topictag.store.models import AdapterVersion
from topictag.student.engine import Adapter, lora_id_for

log = logging.getLogger(__name__)

# Files that define an adapter's behaviour; metrics.json and the like may be rewritten.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


class AdapterRefused(ValueError):
    """An adapter that must not be served; ``str()`` says why."""


def adapter_sha256(path: Path) -> str:
    """Checksum over the files that define an adapter, in a fixed order."""
    digest = hashlib.sha256()
    for name in ADAPTER_FILES:
        file = Path(path) / name
        if not file.exists():
            raise AdapterRefused(f"{path} has no {name}")
        digest.update(name.encode())
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def check_adapter_files(path: Path) -> None:
    """Refuse a folder that is not a readable LoRA adapter: its config must parse and its
    weights file must be safetensors holding LoRA tensors. Reads headers only."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    for name in ADAPTER_FILES:
        if not (path / name).is_file():
            raise AdapterRefused(f"{path} has no {name}")
    try:
        config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterRefused(f"{path}: unreadable adapter_config.json ({exc})") from exc
    if not isinstance(config, dict) or not isinstance(config.get("r"), int) or config["r"] < 1:
        raise AdapterRefused(f"{path}: adapter_config.json has no LoRA rank 'r'")
    try:
        with safe_open(str(path / "adapter_model.safetensors"), framework="pt") as weights:
            names = list(weights.keys())
    except (OSError, SafetensorError) as exc:
        raise AdapterRefused(f"{path}: unreadable weights in adapter_model.safetensors ({exc})") from exc
    if not any("lora_" in name for name in names):
        raise AdapterRefused(f"{path}: adapter_model.safetensors holds no LoRA weights")


def verify_adapter(row: AdapterVersion, base_model: str) -> None:
    """Refuse an adapter whose files changed since registration or that was trained for
    another base model."""
    path = Path(row.path)
    if not path.is_dir():
        raise AdapterRefused(f"adapter {row.version}: folder {path} is missing")
    actual = adapter_sha256(path)
    if actual != row.sha256:
        raise AdapterRefused(f"adapter {row.version}: checksum mismatch (files changed or corrupted)")
    config = json.loads((path / "adapter_config.json").read_text())
    trained_for = Path(str(config.get("base_model_name_or_path") or "")).name
    if row.base_model != base_model or (trained_for and trained_for != Path(base_model).name):
        raise AdapterRefused(
            f"adapter {row.version}: trained for base model {row.base_model!r}, not {base_model!r}"
        )


def as_engine_adapter(row: AdapterVersion) -> Adapter:
    return Adapter(version=row.version, path=Path(row.path), lora_id=lora_id_for(row.sha256))


class AdapterRegistry:
    """Registers adapter versions after checking their files, and moves production between
    them: the files are verified before a promotion, and every change is announced."""

    def __init__(self, store: Store, announce: Callable[[dict], None] | None = None):
        self.versions = store.adapters
        self.announce = announce

    def next_version(self) -> str:
        return self.versions.next_version()

    def register(
        self,
        version: str,
        path: Path,
        *,
        base_model: str,
        metrics: dict,
        training_config: dict,
        label_snapshot: dict,
    ) -> AdapterVersion:
        check_adapter_files(path)
        row = self.versions.add(AdapterVersion(
            version=version,
            path=str(Path(path).resolve()),
            sha256=adapter_sha256(path),
            base_model=base_model,
            metrics=json.dumps(metrics),
            training_config=json.dumps(training_config),
            label_snapshot=json.dumps(label_snapshot),
            status=AdapterStatus.CANDIDATE,
            created_at=utcnow(),
        ))
        log.info("registered adapter %s (%s)", row.version, row.path, extra={"adapter_version": row.version})
        return row

    def get(self, version: str) -> AdapterVersion | None:
        return self.versions.get(version)

    def list(self) -> list[AdapterVersion]:
        return self.versions.list()

    def production(self) -> AdapterVersion | None:
        return self.versions.production()

    def refuse(self, version: str, reason: str) -> AdapterVersion:
        return self.versions.set_status(version, AdapterStatus.REFUSED, reason)

    def promote(self, version: str, reason: str, base_model: str) -> AdapterVersion:
        """Make ``version`` the production adapter (after checking its files)."""
        row = self.get(version)
        if row is None:
            raise AdapterRefused(f"no adapter version {version!r}")
        verify_adapter(row, base_model)
        row = self.versions.promote(version, reason)
        self._announce("promoted", row)
        return row

    def rollback(self, reason: str = "rolled back") -> AdapterVersion | None:
        """Retire production and restore the version promoted before it (or the base model)."""
        rolled = self.versions.roll_back(reason)
        if rolled is None:
            raise AdapterRefused("nothing to roll back: the base model is in production")
        _, restored = rolled
        self._announce("rolled_back", restored)
        return restored

    def _announce(self, event: str, row: AdapterVersion | None) -> None:
        log.info("%s: production adapter is now %s", event, row.version if row else "the base model",
                 extra={"adapter_version": row.version if row else "base", "event": event})
        if self.announce:
            self.announce({"event": event, "version": row.version if row else None, "at": utcnow().isoformat()})
