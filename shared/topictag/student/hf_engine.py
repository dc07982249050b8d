"""The student on plain transformers ``generate``: the fallback engine, and the
reference the benchmarks compare vLLM against."""

from __future__ import annotations

import contextlib

import torch

from topictag.hardware import resolve_dtype
from topictag.settings import Settings
from topictag.student.engine import Adapter, AdapterLoadError, Completion, StudentEngine

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class TransformersEngine(StudentEngine):
    def __init__(self, settings: Settings, model_path: str):
        super().__init__(settings, model_path)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(model_path)
        self._tokenizer.padding_side = "left"  # decoder-only batches are padded on the left
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        dtype = _DTYPES[resolve_dtype(settings.student.dtype)]
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.base = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(self.device).eval()  # type: ignore[arg-type]  # transformers' wrapped to() is typed unbound
        self.model = self.base
        self._loaded: set[str] = set()

    @property
    def tokenizer(self):
        return self._tokenizer

    def use_adapter(self, adapter: Adapter | None) -> None:
        from peft import PeftModel

        if adapter is not None:
            try:
                if not isinstance(self.model, PeftModel):
                    self.model = PeftModel.from_pretrained(self.base, str(adapter.path), adapter_name=adapter.version)
                    self._loaded.add(adapter.version)
                elif adapter.version not in self._loaded:
                    self.model.load_adapter(str(adapter.path), adapter_name=adapter.version)
                    self._loaded.add(adapter.version)
            except Exception as exc:
                raise AdapterLoadError(f"the engine could not load adapter {adapter.version}: {exc}") from exc
            self.model.set_adapter(adapter.version)
        super().use_adapter(adapter)

    def generate(self, conversations: list[list[dict[str, str]]]) -> list[Completion]:
        texts, tokens, scores = self._generate(conversations, do_sample=False, output_logits=True)
        # Log-probability of each chosen token, up to and including the first end-of-answer
        # token; what follows it is padding.
        logprobs = torch.stack(scores, dim=1).float().log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        eos = torch.tensor(self.base.generation_config.eos_token_id, device=tokens.device).reshape(-1)
        ended = torch.isin(tokens, eos).long()
        answer = (ended.cumsum(1) - ended) == 0  # no end token before this position
        means = (logprobs * answer).sum(1) / answer.sum(1).clamp(min=1)
        return [Completion(text, float(mean)) for text, mean in zip(texts, means)]

    def sample(self, conversations: list[list[dict[str, str]]], n: int, temperature: float) -> list[list[str]]:
        torch.manual_seed(0)
        flat, _, _ = self._generate(conversations, do_sample=True, temperature=temperature, num_return_sequences=n)
        return [flat[i * n : (i + 1) * n] for i in range(len(conversations))]

    @torch.inference_mode()
    def _generate(self, conversations: list[list[dict[str, str]]], **decoding) -> tuple[list[str], torch.Tensor, tuple]:
        """Texts, the new tokens, and (with ``output_logits``) the raw logits of each step."""
        prompts = [
            self._tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
            for c in conversations
        ]
        batch = self._tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        # peft injects LoRA layers into the base model in place: serving the base model
        # after an adapter means switching the adapters off, not unwrapping.
        base_only = self.adapter is None and self.model is not self.base
        with self.model.disable_adapter() if base_only else contextlib.nullcontext():
            out = self.model.generate(
                **batch,
                max_new_tokens=self.settings.student.max_new_tokens,
                pad_token_id=self._tokenizer.pad_token_id,
                return_dict_in_generate=True,
                **decoding,
            )
        new_tokens = out.sequences[:, batch["input_ids"].shape[1] :]
        return self._tokenizer.batch_decode(new_tokens, skip_special_tokens=True), new_tokens, out.logits
