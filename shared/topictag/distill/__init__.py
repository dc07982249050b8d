"""Distillation: teacher labels -> a LoRA adapter for the student (trl SFTTrainer + peft)."""
