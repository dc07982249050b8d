"""Fine-tune the student on teacher labels with LoRA (trl SFTTrainer + peft), score the
adapter on held-out labels, and write it atomically: a reader sees no adapter folder or
a whole one with its metrics.json, never a half-written one."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from topictag.adapters.registry import adapter_sha256
from topictag.hardware import native_bf16
from topictag.settings import Settings
from topictag.student.engine import Adapter, StudentEngine, lora_id_for

log = logging.getLogger(__name__)


@dataclass
class DistillResult:
    path: Path
    sha256: str
    metrics: dict
    train_config: dict
    train_seconds: float
    samples_per_s: float
    n_train: int
    n_eval: int
    log_history: list = field(default_factory=list, repr=False)


def train_config(settings: Settings) -> dict:
    return settings.distill.model_dump() | {"base_model": settings.student.model_name}


def _completion_only_trainer_class():
    import torch
    import torch.nn.functional as F
    from trl import SFTTrainer

    class CompletionOnlySFTTrainer(SFTTrainer):
        """SFTTrainer whose loss runs the LM head on the completion tokens only.

        A topic is ~10 tokens after a ~300-token prompt, and the student's vocabulary has
        49k entries: the LM head over every prompt position cost more than the rest of the
        step on a CPU. Prompt positions carry no loss, so skipping them changes nothing
        but the time.
        """

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs["labels"]
            causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
            body = {k: v for k, v in inputs.items() if k != "labels"}
            targets = labels[:, 1:]
            keep = targets != -100
            # accelerate applies bf16 autocast by wrapping model.forward, which this bypasses.
            with self.accelerator.autocast():
                hidden = causal_lm.model(**body, use_cache=False).last_hidden_state
                logits = causal_lm.lm_head(hidden[:, :-1][keep])
            loss = F.cross_entropy(logits.float(), targets[keep], reduction="sum")
            count = num_items_in_batch if num_items_in_batch is not None else keep.sum()
            loss = loss / torch.as_tensor(count, device=loss.device).clamp(min=1)
            return (loss, None) if return_outputs else loss

    return CompletionOnlySFTTrainer


def _trainer(settings: Settings, train: pd.DataFrame, output_dir: Path, callbacks=()):
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig

    from topictag.distill.dataset import to_sft_dataset
    from topictag.student.model_files import student_model_path

    cfg = settings.distill
    model_path = student_model_path(settings)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # float32 master weights; bf16 autocast does the matrix work (AMX on CPUs that have it).
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    on_gpu = torch.cuda.is_available()
    args = SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_steps,
        weight_decay=0.0,
        # trl turns both on by default; on a CPU they cost more than they save.
        bf16=native_bf16() if cfg.bf16 is None else cfg.bf16,
        gradient_checkpointing=cfg.gradient_checkpointing,
        padding_free=cfg.padding_free,
        completion_only_loss=True,
        # Abstracts are cut already; trl's cut would fall on the completion, the only part with a loss.
        max_length=None,
        train_sampling_strategy="group_by_length" if cfg.group_by_length and not cfg.padding_free else "random",
        use_cpu=not on_gpu,
        save_strategy="no",
        report_to=[],
        logging_steps=10,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=cfg.seed,
        data_seed=cfg.seed,
    )
    layers = model.config.num_hidden_layers
    top = range(layers - cfg.lora_top_layers, layers) if 0 < cfg.lora_top_layers < layers else None
    peft_config = LoraConfig(
        layers_to_transform=list(top) if top else None,
        layers_pattern="layers" if top else None,
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
        task_type="CAUSAL_LM",
    )
    return _completion_only_trainer_class()(
        model=model,
        args=args,
        train_dataset=to_sft_dataset(train, tokenizer, settings),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=list(callbacks),
    )


def name_base_model(adapter_dir: Path, model_name: str) -> None:
    """Record the base model by its name, not the local folder it was loaded from: the
    adapter then reads the same on every machine, and the registry checks it by name."""
    config_file = Path(adapter_dir) / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = model_name
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def cast_adapter_weights(adapter_dir: Path, dtype: str) -> None:
    """Store the adapter's weights in ``dtype``: bf16 halves the file, and engines compute
    LoRA in their own dtype anyway. Done before scoring, so the scores are the file's."""
    import torch
    from safetensors.torch import load_file, save_file

    file = Path(adapter_dir) / "adapter_model.safetensors"
    weights = {name: t.to(getattr(torch, dtype)).contiguous() for name, t in load_file(file).items()}
    save_file(weights, file, metadata={"format": "pt"})


def score_adapter(engine: StudentEngine, adapter: Adapter, frame: pd.DataFrame) -> dict:
    """Tag ``frame``'s abstracts with ``adapter`` and score them against its teacher topics."""
    from topictag.evaluation import score_engine

    previous = engine.adapter
    engine.use_adapter(adapter)
    try:
        started = time.monotonic()
        result = score_engine(engine, frame)
        result["papers_per_s"] = round(len(frame) / (time.monotonic() - started), 2)
        return result
    finally:
        engine.use_adapter(previous)


def distill(
    settings: Settings,
    train: pd.DataFrame,
    out_dir: Path,
    eval: pd.DataFrame | None = None,
    engine: StudentEngine | None = None,
    callbacks=(),
) -> DistillResult:
    """Train an adapter on ``train`` and write it to ``out_dir`` (which must not exist or be
    empty), with metrics on ``eval`` when given."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        trainer = _trainer(settings, train, staging / "trainer", callbacks)
        started = time.monotonic()
        trainer.train()
        seconds = time.monotonic() - started
        samples = trainer.state.epoch * len(trainer.train_dataset)
        adapter_dir = staging / "adapter"
        trainer.model.save_pretrained(adapter_dir)
        (adapter_dir / "README.md").unlink(missing_ok=True)  # peft's blank model card template
        name_base_model(adapter_dir, settings.student.model_name)
        if settings.distill.save_dtype != "float32":
            cast_adapter_weights(adapter_dir, settings.distill.save_dtype)
        sha = adapter_sha256(adapter_dir)
        metrics: dict = {}
        if eval is not None and len(eval):
            from topictag.student.factory import create_engine

            candidate = Adapter(f"candidate-{sha[:12]}", adapter_dir, lora_id=lora_id_for(sha))
            if engine is not None:
                metrics = score_adapter(engine, candidate, eval)
            else:
                own = create_engine(settings)
                try:
                    metrics = score_adapter(own, candidate, eval)
                finally:
                    own.close()
        config = train_config(settings)
        result = DistillResult(
            path=out_dir,
            sha256=sha,
            metrics=metrics,
            train_config=config,
            train_seconds=round(seconds, 1),
            samples_per_s=round(samples / seconds, 3) if seconds else 0.0,
            n_train=len(train),
            n_eval=0 if eval is None else len(eval),
            log_history=trainer.state.log_history,
        )
        summary = {"base_model": settings.student.model_name} | {
            k: v for k, v in asdict(result).items() if k not in ("path", "log_history")
        }
        (adapter_dir / "metrics.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked above
        os.rename(adapter_dir, out_dir)  # atomic on one filesystem
        log.info("adapter written to %s (%.0f s, %.2f samples/s)", out_dir, seconds, result.samples_per_s)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)
