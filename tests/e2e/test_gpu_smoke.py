"""bench/gpu_smoke.py keeps working without a GPU: its steps (load, tag, train, hot-swap,
tag again) run on the CPU with small numbers."""

import pytest


@pytest.mark.model
def test_gpu_smoke_runs_its_steps_on_the_cpu(tmp_path):
    from bench.gpu_smoke import run, smoke_settings

    settings = smoke_settings("cpu", steps=2, gpu_memory_utilization=0.4)
    result = run(settings, "cpu", n_papers=8, batch=8, out_dir=tmp_path)
    assert result["papers"] == 8 and result["train_steps"] == 2
    # The trained adapter was swapped into the running engine and served every paper after.
    assert result["served_by"] == {"base": ["base"], "after_swap": ["smoke"]}
    assert len(result["sample_topics"]) == 5 and all(result["sample_topics"])
    assert result["peak_memory_mib"] > 100  # the engine's process is counted, not only this one
