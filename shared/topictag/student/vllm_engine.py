"""The student on vLLM, in-process. vLLM starts its engine core with spawn, so whatever
creates this engine must run under ``if __name__ == "__main__":`` (the CLI does)."""

from __future__ import annotations

import os

from topictag.hardware import resolve_dtype
from topictag.settings import Settings
from topictag.student.engine import Adapter, AdapterLoadError, Completion, StudentEngine

_GIB = 1 << 30


class VllmEngine(StudentEngine):
    def __init__(self, settings: Settings, model_path: str):
        super().__init__(settings, model_path)
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # its per-weight dtype warnings drown our logs
        from vllm import LLM, SamplingParams
        from vllm.platforms import current_platform

        cfg = settings.student
        per_platform: dict = {"gpu_memory_utilization": cfg.gpu_memory_utilization}
        if current_platform.is_cpu():
            # On the CPU backend the utilisation fraction is of RAM; an explicit KV cache size
            # is predictable on a shared machine.
            per_platform = {"kv_cache_memory_bytes": int(cfg.kv_cache_gib * _GIB)}
            # No prompt is split across engine steps: a split one's sampled token is thrown
            # away and its seeded generator rewound, which CPU generators cannot do (the
            # engine core died on the first MBR batch that split a prompt).
            per_platform["enable_chunked_prefill"] = False
            # Read by the engine's worker process when it binds its OpenMP threads to cores.
            os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", str(cfg.cpu_reserved_cores))
        self.llm = LLM(
            model=model_path,
            dtype=resolve_dtype(cfg.dtype),
            max_model_len=cfg.max_model_len,
            enable_lora=True,
            max_lora_rank=cfg.max_lora_rank,
            max_loras=2,
            enforce_eager=cfg.enforce_eager,
            enable_prefix_caching=True,
            seed=0,
            **per_platform,
        )
        # logprobs=0: no alternatives, just the chosen tokens' log-probabilities (their sum,
        # over the tokens, is the answer's confidence).
        self._sampling = SamplingParams(temperature=0.0, max_tokens=cfg.max_new_tokens, logprobs=0)
        self._tokenizer = self.llm.get_tokenizer()

    @property
    def tokenizer(self):
        return self._tokenizer

    @staticmethod
    def _request_for(adapter: Adapter):
        from vllm.lora.request import LoRARequest

        return LoRARequest(adapter.version, adapter.lora_id, str(adapter.path))

    def _lora_request(self):
        return None if self.adapter is None else self._request_for(self.adapter)

    def use_adapter(self, adapter: Adapter | None) -> None:
        if adapter is not None:
            # Loaded now, through the engine's utility call: a bad adapter fails here and the
            # engine lives on. Loaded lazily by a generate call instead, it would kill the
            # engine core (EngineDeadError) and every batch after it.
            try:
                self.llm.llm_engine.add_lora(self._request_for(adapter))
            except Exception as exc:
                raise AdapterLoadError(f"the engine could not load adapter {adapter.version}: {exc}") from exc
        super().use_adapter(adapter)

    @staticmethod
    def _completion(output) -> Completion:
        return Completion(output.text, output.cumulative_logprob / max(1, len(output.token_ids)))

    def generate(self, conversations: list[list[dict[str, str]]]) -> list[Completion]:
        outputs = self.llm.chat(
            conversations, self._sampling, use_tqdm=False, lora_request=self._lora_request()  # type: ignore[arg-type]  # vLLM types messages as TypedDicts; ours are plain dicts
        )
        return [self._completion(o.outputs[0]) for o in outputs]

    def _sampled(self, n: int, temperature: float):
        from vllm import SamplingParams

        return SamplingParams(n=n, temperature=temperature, max_tokens=self.settings.student.max_new_tokens, seed=0)

    def sample(self, conversations: list[list[dict[str, str]]], n: int, temperature: float) -> list[list[str]]:
        outputs = self.llm.chat(conversations, self._sampled(n, temperature), use_tqdm=False, lora_request=self._lora_request())  # type: ignore[arg-type]  # vLLM types messages as TypedDicts; ours are plain dicts
        return [[c.text for c in o.outputs] for o in outputs]

    def candidates(
        self, conversations: list[list[dict[str, str]]], n: int, temperature: float
    ) -> list[tuple[Completion, list[str]]]:
        # One engine call: each prompt twice, greedy and sampled n times; the second shares
        # the first's prefill through the prefix cache.
        k = len(conversations)
        outputs = self.llm.chat(
            conversations + conversations,  # type: ignore[arg-type]  # vLLM types messages as TypedDicts; ours are plain dicts
            [self._sampling] * k + [self._sampled(n, temperature)] * k,
            use_tqdm=False,
            lora_request=self._lora_request(),
        )
        return [(self._completion(outputs[i].outputs[0]), [c.text for c in outputs[k + i].outputs]) for i in range(k)]

    def close(self) -> None:
        engine = getattr(self.llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
