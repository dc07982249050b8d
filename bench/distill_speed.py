"""Training speed: plain trl SFTTrainer vs topictag's distillation settings, side by side
on the same labels and machine, a few optimizer steps each (the first is warm-up).

    .venv/bin/python bench/distill_speed.py [--steps 6]

Plain trl is what the original setup measured (~0.5 samples/s): fp32, batch 8, LoRA r=16
on all 7 projection layers, gradient checkpointing (trl's default), full abstracts, and
the LM head over every position.
"""

from __future__ import annotations

import argparse
import time

from transformers import TrainerCallback

from bench.common import bar_chart, dev_split, write
from topictag.distill.train import _trainer
from topictag.settings import DistillSettings, get_settings


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self._t)


def plain_trl(train, steps: int, out):
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from topictag.distill.dataset import to_sft_dataset
    from topictag.student.model_files import student_model_path

    settings = get_settings()
    settings = settings.model_copy(update={"distill": DistillSettings(max_abstract_tokens=10_000)})
    path = student_model_path(settings)
    tokenizer = AutoTokenizer.from_pretrained(path)
    timer = StepTimer()
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
        args=SFTConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=8, learning_rate=2e-4,
                       bf16=False, gradient_checkpointing=True, use_cpu=not torch.cuda.is_available(), save_strategy="no", report_to=[],
                       disable_tqdm=True, logging_steps=1000),
        train_dataset=to_sft_dataset(train, tokenizer, settings),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                               target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
        callbacks=[timer],
    )
    trainer.train()
    return timer.times, 8


def topictag_defaults(train, steps: int, out):
    settings = get_settings()
    settings = settings.model_copy(update={"distill": settings.distill.model_copy(update={"max_steps": steps})})
    timer = StepTimer()
    _trainer(settings, train, out, [timer]).train()
    return timer.times, settings.distill.batch_size * settings.distill.gradient_accumulation


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    import tempfile

    train, _ = dev_split()
    result = {"steps": args.steps, "runs": {}}
    for name, run in (("plain trl", plain_trl), ("topictag", topictag_defaults)):
        with tempfile.TemporaryDirectory() as out:
            times, batch = run(train, args.steps, out)
        steady = times[1:]  # the first step pays for warm-up
        result["runs"][name] = {
            "batch": batch,
            "first_step_s": round(times[0], 2),
            "step_s": round(sum(steady) / len(steady), 2),
            "samples_per_s": round(batch * len(steady) / sum(steady), 3),
        }
    plain, ours = result["runs"]["plain trl"]["samples_per_s"], result["runs"]["topictag"]["samples_per_s"]
    result["speedup"] = round(ours / plain, 2)
    write("distill_speed", result)
    bar_chart("distill_speed", ["plain trl", "topictag"], [plain, ours], "samples/s",
              f"LoRA distillation, 2 CPU cores ({result['speedup']}x)")


if __name__ == "__main__":
    main()
