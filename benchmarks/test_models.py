"""Throughput, memory, warm-up and overhead for every registered (model, backend).

Parametrised over the registry and the devices present (CPU always, CUDA when there is
one). Full runs use each family's real preset on real data; ``GENZOO_BENCH_SMOKE=1``
uses the tiny presets for two steps, so CI runs every benchmark once.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import numpy as np
import pytest

from bench_support import SMOKE, peak_rss_mib, record, reset_peak_rss
from genzoo.registry import get_registry

FULL = {"vae": ("mlp", "mnist"), "gan": ("dcgan", "mnist"),
        "transformer": ("nanogpt-cpu", "tiny-shakespeare")}
# On a GPU the Transformer runs its GPU configuration, in bf16 autocast like every CUDA
# case; GENZOO_BENCH_COMPILE=1 adds torch.compile.
FULL_CUDA = {**FULL, "transformer": ("baby", "tiny-shakespeare")}
CUDA_PRECISION = os.environ.get("GENZOO_BENCH_PRECISION", "bf16")
COMPILE = os.environ.get("GENZOO_BENCH_COMPILE") == "1"
STEPS = 2 if SMOKE else 50
ROUNDS = 1 if SMOKE else 5
PAIRS = sorted(get_registry().models)


def _devices() -> list[str]:
    try:
        import torch

        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    except ImportError:
        return ["cpu"]


CASES = [(n, b, d) for n, b in PAIRS for d in _devices() if b == "torch" or d == "cpu"]
IDS = [f"{n}-{b}-{d}" for n, b, d in CASES]

# Peak dense bf16 TFLOP/s of common accelerators (spec sheets), the more specific names
# first (an "H100 PCIe" is not an SXM H100, an "L40S" not an "L4"); others:
# GENZOO_PEAK_TFLOPS.
PEAK_TFLOPS = [(r"H100 PCIe", 756.0), (r"H100", 989.0), (r"H200", 989.0), (r"A100", 312.0),
               (r"L40S", 362.0), (r"L40\b", 181.0), (r"L4\b", 121.0), (r"A10\b", 125.0)]


def peak_tflops(device: str) -> float | None:
    """The device's peak, for the model FLOPs utilisation; none for CPUs."""
    if device != "cuda":
        return None
    if os.environ.get("GENZOO_PEAK_TFLOPS"):
        return float(os.environ["GENZOO_PEAK_TFLOPS"])
    import torch

    name = torch.cuda.get_device_name()
    return next((v for pattern, v in PEAK_TFLOPS if re.search(pattern, name)), None)


def setup(name: str, backend: str, device: str, preset: str | None = None,
          **overrides: Any) -> dict[str, Any]:
    """Model, trainer and batches for one benchmark case (``preset``: instead of FULL's)."""
    import genzoo
    from genzoo.api import plan
    from genzoo.backends import get_backend
    from genzoo.data import load_dataset

    if backend == "keras":
        pytest.importorskip("keras")  # a machine with torch alone still runs the rest
    full = FULL_CUDA if device == "cuda" else FULL
    chosen, data_name = ("tiny", None) if SMOKE else full.get(name, ("tiny", None))
    preset = chosen if SMOKE or preset is None else preset
    if device == "cuda":
        overrides = {"precision": CUDA_PRECISION, **overrides}
    if COMPILE:
        overrides = {"compile": True, **overrides}
    spec = get_registry().model(name, backend)
    p = plan(name, backend, preset, data=data_name, **overrides)
    data = load_dataset(p.data, spec.kind)
    cfg = p.train_config
    if spec.kind == "text":
        block = p.model_config.block_size
        batches = data.train_batches(cfg.batch_size, cfg.seed, block_size=block)
        items, unit = cfg.batch_size * block, "tokens"
    else:
        batches = data.train_batches(cfg.batch_size, cfg.seed)
        items, unit = cfg.batch_size, "images"
    gen = genzoo.create(name, backend, preset, data=p.data, device=device, **overrides)
    trainer = get_backend(backend).make_trainer(gen, cfg)
    return {"gen": gen, "trainer": trainer, "batches": batches, "cfg": cfg, "items": items,
            "unit": unit, "plan": p, "data": data}


TOTAL = 2000  # the schedule's length when the preset counts epochs, not steps


def _genzoo_runner(case: dict[str, Any]):
    """genzoo's training loop (its per-step code: schedule, metrics, logging, the callbacks'
    events with the progress reporter on), run in windows of a run as long as the
    preset's, so the learning rate is the real one."""
    import io

    from genzoo.callbacks import ProgressCallback, TrainingContext
    from genzoo.progress import PlainReporter
    from genzoo.training import _Loop

    cfg, batches = case["cfg"], case["batches"]
    total = cfg.steps or TOTAL
    context = TrainingContext(None, case["trainer"], None, None, cfg, None,  # type: ignore[arg-type]
                              total, batches.steps_per_epoch)
    progress = ProgressCallback(PlainReporter(io.StringIO()))  # as `genzoo train` reports
    progress.on_train_start(context)
    loop = _Loop(case["trainer"], batches, cfg, total, batches.steps_per_epoch, None,
                 [progress], context)

    def run(start: int, steps: int) -> None:
        for step in range(start, start + steps):
            loop.step(step)

    return run


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


@pytest.mark.parametrize(("name", "backend", "device"), CASES, ids=IDS)
def test_train_throughput(benchmark, name: str, backend: str, device: str) -> None:
    rss_before = reset_peak_rss()  # this case's own peak, not the process's so far
    case = setup(name, backend, device)
    run = _genzoo_runner(case)
    t0 = time.perf_counter()
    run(0, 1)  # the first step: tracing, allocation, warm-up
    _sync(device)
    first_step = time.perf_counter() - t0
    state = {"step": 1}

    def steps() -> None:
        run(state["step"], STEPS)
        _sync(device)
        state["step"] += STEPS

    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
    benchmark.pedantic(steps, rounds=ROUNDS, iterations=1)
    if benchmark.disabled:  # --benchmark-disable: the code ran once, nothing was timed
        return
    per_s = case["items"] * STEPS / benchmark.stats.stats.median
    peak = peak_rss_mib()
    info = {f"{case['unit']}_per_s": per_s, "first_step_s": first_step,
            "step_ms": 1e3 * benchmark.stats.stats.median / STEPS,
            "peak_rss_mib": peak, "rss_increase_mib": peak - rss_before}
    if device == "cuda":
        import torch

        info["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if name == "transformer":
        flops = transformer_flops_per_token(case["gen"])
        info["model_tflops"] = flops * per_s / 1e12
        peak = peak_tflops(device)
        if peak:
            info["mfu"] = info["model_tflops"] / peak
    benchmark.extra_info.update(info)
    record(f"{name} {backend} {device}: train {case['unit']}/s",
           f"{per_s:,.0f} (first step {first_step:.2f} s, {info['step_ms']:.1f} ms/step)")


def transformer_flops_per_token(gen: Any) -> float:
    """Training FLOPs per token: 6 N for the matmuls plus attention (the PaLM estimate)."""
    cfg = gen.config
    n = gen.num_parameters() - gen.config.block_size * cfg.n_embd  # no position embeddings
    return 6 * n + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size


@pytest.mark.parametrize(("name", "backend", "device"), CASES, ids=IDS)
def test_sample_throughput(benchmark, name: str, backend: str, device: str) -> None:
    case = setup(name, backend, device)
    gen = case["gen"]
    if case["unit"] == "tokens":
        # One context window from a one-character prompt: where the cache matters (past
        # the window both paths re-encode it, see genzoo.sampling).
        tokens = gen.config.block_size - 1
        for cached in (True, False):  # warm-up: traces the Keras steps once, off the clock
            gen.generate("\n", max_new_tokens=2, seed=0, cache=cached)
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(ROUNDS):  # alternated, so the machine's noise hits both alike
            for cached in (True, False):
                t0 = time.perf_counter()
                gen.generate("\n", max_new_tokens=tokens, seed=0, cache=cached)
                times[cached].append(time.perf_counter() - t0)
        rates = {cached: tokens / float(np.median(t)) for cached, t in times.items()}
        benchmark.pedantic(gen.generate, args=("\n",), kwargs={"max_new_tokens": tokens,
                           "seed": 0}, rounds=ROUNDS, iterations=1)
        benchmark.extra_info.update(tokens_per_s_cached=rates[True],
                                    tokens_per_s_uncached=rates[False])
        record(f"{name} {backend} {device}: generate tokens/s cached / uncached",
               f"{rates[True]:,.0f} / {rates[False]:,.0f}")
        return
    n = 16 if SMOKE else 256
    gen.sample(n, seed=0)  # warm-up
    benchmark.pedantic(gen.sample, args=(n,), kwargs={"seed": 0}, rounds=ROUNDS, iterations=1)
    if benchmark.disabled:
        return
    per_s = n / benchmark.stats.stats.median
    benchmark.extra_info["images_per_s"] = per_s
    record(f"{name} {backend} {device}: sample images/s", f"{per_s:,.0f}")


TORCH_CASES = [(n, d) for n, b, d in CASES if b == "torch"]


@pytest.mark.parametrize(("name", "device"), TORCH_CASES, ids=[f"{n}-{d}" for n, d in TORCH_CASES])
def test_overhead_against_handwritten_torch(benchmark, name: str, device: str) -> None:
    """genzoo's loop and a minimal hand-written loop, alternated in one process (which runs
    first alternates too)."""
    from handwritten import LOOPS

    if COMPILE:
        pytest.skip("the hand-written loops run eagerly; compare compiled runs by throughput")
    case = setup(name, "torch", device)
    ours = _genzoo_runner(case)
    import genzoo

    cfg = case["cfg"]
    twin = genzoo.create(name, "torch", case["plan"].preset, data=case["plan"].data,
                         device=device)
    theirs = LOOPS[name](twin.module, case["batches"], cfg, device=device,
                         bf16=case["trainer"].precision == "bf16", total=cfg.steps or TOTAL)
    ours(0, 2)
    theirs(0, 2)
    _sync(device)
    times: dict[str, list[float]] = {"genzoo": [], "hand": []}
    state = {"step": 2}

    def both() -> None:
        order = [("genzoo", ours), ("hand", theirs)]
        for key, fn in order if len(times["genzoo"]) % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            fn(state["step"], STEPS)
            _sync(device)
            times[key].append(time.perf_counter() - t0)
        state["step"] += STEPS

    benchmark.pedantic(both, rounds=ROUNDS, iterations=1)
    ratio = float(np.median(times["hand"]) / np.median(times["genzoo"]))
    benchmark.extra_info.update(throughput_ratio=ratio,
                                genzoo_step_ms=1e3 * float(np.median(times["genzoo"])) / STEPS,
                                handwritten_step_ms=1e3 * float(np.median(times["hand"])) / STEPS)
    record(f"{name} torch {device}: genzoo / hand-written throughput", f"{ratio:.3f}")


@pytest.mark.parametrize("full", [FULL, FULL_CUDA], ids=["cpu", "cuda"])
def test_the_full_presets_resolve(full: dict[str, tuple[str, str]]) -> None:
    """The smoke run trains tiny presets; this keeps the full runs' presets and datasets
    from rotting unnoticed (a renamed preset fails here, in CI)."""
    from genzoo.api import plan

    for name, backend in PAIRS:
        if name in full:
            preset, data = full[name]
            assert plan(name, backend, preset, data=data).preset == preset


CONDITIONAL = {"vae": ("mlp", "cvae"), "gan": ("dcgan", "cgan")}  # (unconditional, conditional)
COND_CASES = [(n, b, d) for n, b, d in CASES if n in CONDITIONAL]


@pytest.mark.parametrize(("name", "backend", "device"), COND_CASES,
                         ids=[f"{n}-{b}-{d}" for n, b, d in COND_CASES])
def test_conditional_sample_throughput(benchmark, name: str, backend: str, device: str) -> None:
    """Drawing chosen classes against drawing at random, alternated in one process: the
    conditional preset with labels given, and the unconditional preset it extends."""
    import genzoo

    if backend == "keras":
        pytest.importorskip("keras")
    plain, conditional = ("tiny", "tiny-conditional") if SMOKE else CONDITIONAL[name]
    data = "digits" if SMOKE else "mnist"
    models = {"plain": genzoo.create(name, backend, plain, data=data, device=device),
              "conditional": genzoo.create(name, backend, conditional, data=data, device=device)}
    n = 16 if SMOKE else 1024
    labels = np.arange(n) % models["conditional"].num_classes
    calls = {"plain": lambda: models["plain"].sample(n, seed=0),
             "conditional": lambda: models["conditional"].sample(n, seed=0, labels=labels)}
    for call in calls.values():
        call()  # warm-up
    times: dict[str, list[float]] = {"plain": [], "conditional": []}

    def both() -> None:
        order = list(calls.items())
        for key, call in order if len(times["plain"]) % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            for _ in range(1 if SMOKE else 10):
                call()
            _sync(device)
            times[key].append(time.perf_counter() - t0)

    benchmark.pedantic(both, rounds=2 * ROUNDS, iterations=1)
    ratio = float(np.median(times["plain"]) / np.median(times["conditional"]))
    benchmark.extra_info.update(conditional_over_unconditional=ratio)
    record(f"{name} {backend} {device}: conditional / unconditional sampling throughput",
           f"{ratio:.3f}")


GAN_PRESETS = ["dcgan", "sngan"]  # the classic recipe (batch 128) and the default (64)


@pytest.mark.parametrize("preset", GAN_PRESETS)
def test_gan_step_keras_against_torch(benchmark, preset: str) -> None:
    """The GAN's training step in Keras (TensorFlow) and in PyTorch, alternated in one
    process on the CPU: the ratio of their step times (the target: Keras within 1.3x)."""
    pytest.importorskip("keras")
    runs = {b: _genzoo_runner(setup("gan", b, "cpu", preset)) for b in ("torch", "keras")}
    for run in runs.values():
        run(0, 2)  # tracing (XLA's compilation for Keras), allocation, warm-up
    times: dict[str, list[float]] = {"torch": [], "keras": []}
    state = {"step": 2}

    def both() -> None:
        order = list(runs.items())
        for key, run in order if len(times["torch"]) % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            run(state["step"], STEPS)
            times[key].append(time.perf_counter() - t0)
        state["step"] += STEPS

    benchmark.pedantic(both, rounds=ROUNDS, iterations=1)
    ms = {k: 1e3 * float(np.median(v)) / STEPS for k, v in times.items()}
    ratio = ms["keras"] / ms["torch"]
    benchmark.extra_info.update(torch_step_ms=ms["torch"], keras_step_ms=ms["keras"],
                                keras_over_torch=ratio)
    record(f"gan {preset} cpu: Keras / PyTorch step time",
           f"{ratio:.3f} ({ms['keras']:.1f} / {ms['torch']:.1f} ms)")
