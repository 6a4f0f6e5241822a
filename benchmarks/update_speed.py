"""World-model and actor-critic update times (ms) per model preset, image size and precision.

    python benchmarks/update_speed.py                          # cpu, size12m, size200m at 64^2 and 128^2
    python benchmarks/update_speed.py --presets cpu --sizes 64 --repeats 5

Batch 16 x 64 (the DreamerV3 default) unless --batch/--length say otherwise. Times are medians of
``--repeats`` updates after ``--warmup`` warm-ups (default 1; CUDA graphs under ``compile=reduce-overhead`` are
recorded on a later call, so give that 3); compare configurations by the ratios printed in the same run,
not across machines. size200m does not fit a 2-core CPU's patience: pass --presets to choose. Each row
runs in a fresh process, with the allocator setting training uses (``retain``) and glibc's default, and
prints that process's peak resident memory and the minor page faults per timed update (memory handed back to
the system and taken again: each fault is a zeroed page, so many of them cost time as well as churn).

How close to the machine's limit: each row also prints the update's floating-point work, counted once (on
the warm-up update) by torch's ``FlopCounterMode`` -- matrix multiplies and convolutions, forward and
backward; element-wise work is not counted --, the GFLOP/s that work achieved in the measured time, and
that rate as a fraction of the machine's own dense-matmul rate (a loop of square matmuls in the row's
precision, up to --matmul-size 2048, smaller where one matmul alone is slow, as bf16 is on CPUs without bf16
instructions; same threads and device, measured in a fresh process of the same run).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from pvm_mbrl.dreamer.agent import Agent, autocast, resolve_device
from pvm_mbrl.training.allocator import retain_freed_memory
from pvm_mbrl.training.config import compose_config

ALLOCATORS = ("retain", "default")


def synthetic_batch(batch: int, length: int, size: int, action_dim: int, device) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(0)
    is_first = np.zeros((batch, length), bool)
    is_first[:, 0] = True
    data = {
        "image": rng.integers(0, 255, (batch, length, size, size, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (batch, length, action_dim)).astype(np.float32),
        "reward": rng.normal(size=(batch, length)).astype(np.float32),
        "is_first": is_first, "is_last": np.zeros((batch, length), bool),
        "is_terminal": np.zeros((batch, length), bool),
    }
    return {k: torch.as_tensor(v, device=device) for k, v in data.items()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def one_update(agent: Agent, data: dict[str, torch.Tensor]) -> tuple[float, float]:
    """One world-model + actor-critic update as this benchmark times it: (world-model s, actor-critic s)."""
    agent.optimizer.zero_grad(set_to_none=True)
    sync(agent.device)
    start = time.perf_counter()
    with autocast(agent.device, agent.cfg.precision):
        losses, post = agent.world_model_loss(data, None)
    sum(v.mean() for v in losses.values()).backward()
    sync(agent.device)
    middle = time.perf_counter()
    with autocast(agent.device, agent.cfg.precision):
        flat = post.map(lambda x: x.detach().reshape(-1, *x.shape[2:]))
        ac_losses, _, _ = agent.imagination_loss(agent.world_model, flat, data["is_terminal"].reshape(-1))
    sum(v.mean() for v in ac_losses.values()).backward()
    agent.optimizer.step()
    sync(agent.device)
    return middle - start, time.perf_counter() - middle


def count_update_flops(agent: Agent, data: dict[str, torch.Tensor]) -> int:
    """Floating-point operations of one update (:func:`one_update`, which it also performs), as counted by
    ``FlopCounterMode``: matmuls and convolutions, forward and backward; element-wise ops are not counted."""
    with FlopCounterMode(display=False) as counter:
        one_update(agent, data)
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class UpdateCost:
    """One configuration's update: median ms of its two halves, FLOPs (None where not countable) and memory."""

    world_model_ms: float
    actor_critic_ms: float
    flops: int | None
    faults_per_update: float  # minor page faults per timed update: memory the allocator returned and took back
    peak_rss_gb: float  # the process's peak resident memory (a fresh process per configuration)


def time_update(agent: Agent, data: dict[str, torch.Tensor], repeats: int, warmup: int = 1) -> UpdateCost:
    """Median ms of (world-model forward+backward, actor-critic forward+backward) over ``repeats``, the
    update's FLOPs, counted on the warm-up update (which warms up allocators and kernels; None where the
    counter cannot run the update, then the warm-up runs without it), and the timed updates' memory."""
    try:
        flops = count_update_flops(agent, data)
    except Exception as error:  # e.g. a compiled graph the dispatch-mode counter cannot enter
        print(f"[update_speed] FLOPs not counted: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        flops = None
        one_update(agent, data)
    for _ in range(warmup - 1):
        one_update(agent, data)
    wm_times, ac_times = [], []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        wm_s, ac_s = one_update(agent, data)
        wm_times.append(1000 * wm_s)
        ac_times.append(1000 * ac_s)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return UpdateCost(statistics.median(wm_times), statistics.median(ac_times), flops,
                      (usage.ru_minflt - faults) / repeats, usage.ru_maxrss / 2**20)  # ru_maxrss: KiB on Linux


def matmul_gflops(precision: str, device: str = "auto", threads: int = 0, n: int = 2048,
                  min_seconds: float = 1.0) -> tuple[float, int]:
    """The machine's dense-matmul rate (GFLOP/s) in ``precision`` (fp32 | bf16) and the matrix size used: the
    best of three loops of at least ``min_seconds`` each of ``n x n`` matmuls, after a warm-up. The size grows
    from 256 by doubling up to ``n`` while one matmul is expected to stay within ``min_seconds`` (bf16 without
    hardware support runs ~30x slower than fp32), so the measurement stays short."""
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    generator = torch.Generator().manual_seed(0)
    size = min(256, n)
    while True:
        a, b = (torch.randn(size, size, generator=generator).to(device, dtype) for _ in range(2))
        out = torch.empty(size, size, device=device, dtype=dtype)
        torch.matmul(a, b, out=out)  # warm-up
        sync(device)
        start = time.perf_counter()
        torch.matmul(a, b, out=out)
        sync(device)
        if size * 2 > n or 8 * (time.perf_counter() - start) > min_seconds:
            break
        size *= 2
    n = size
    best = 0.0
    for _ in range(3):
        count, start = 0, time.perf_counter()
        while True:
            torch.matmul(a, b, out=out)
            count += 1
            sync(device)
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        best = max(best, 2 * n**3 * count / elapsed / 1e9)
    return best, n


def train_step_batch(agent: Agent, batch: int, length: int, size: int) -> dict[str, torch.Tensor]:
    """A batch for ``Agent.train_step`` of ``length`` learned steps: :func:`synthetic_batch`, plus what replay
    stores beside each step for this agent, found from the agent at run time (with ``replay_context`` the
    batch is one step longer and carries the posterior latents ``Agent.replay_latent`` gives)."""
    context = int(agent.cfg.get("replay_context", 0) or 0) if hasattr(agent, "replay_latent") else 0
    total = length + context
    data = synthetic_batch(batch, total, size, agent.action_dim, agent.device)
    if context:
        state, _ = agent.initial_state(batch * total)
        for key, value in agent.replay_latent(state).items():
            data[key] = torch.as_tensor(value.reshape(batch, total, *value.shape[1:]), device=agent.device)
    return data


ACTION_DIM = 6  # continuous actions in every synthetic batch


def build_agent(preset: str, size: int, precision: str, batch: int, length: int, device: torch.device | str,
                overrides: tuple[str, ...] | list[str] = ()) -> Agent:
    """The agent of one configuration: a model preset at ``size``^2 images, ``ACTION_DIM`` continuous actions."""
    cfg = compose_config([f"model={preset}", f"env.size={size}", f"precision={precision}",
                          f"batch_length={length}", f"batch_size={batch}", *overrides])
    torch.manual_seed(0)
    return Agent(cfg, {"image_size": size, "vectors": {}}, ACTION_DIM, False, device)


def measure(preset: str, size: int, precision: str, batch: int, length: int, repeats: int, device: str,
            retain: bool, threads: int = 0, overrides: tuple[str, ...] = (),
            warmup: int = 1) -> tuple[UpdateCost, float]:
    """The update's cost and the parameters in millions for one configuration, in this process; ``overrides``
    are further config overrides (e.g. a compile setting)."""
    if retain:
        retain_freed_memory()
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device)
    agent = build_agent(preset, size, precision, batch, length, device, overrides)
    data = synthetic_batch(batch, length, size, ACTION_DIM, device)
    return time_update(agent, data, repeats, warmup), sum(p.numel() for p in agent.parameters()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["cpu", "size12m", "size200m"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 128])
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates first (the first counts FLOPs)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads in every process (0: torch's default)")
    parser.add_argument("--matmul-size", type=int, default=2048,
                        help="largest matrix size of the machine's matmul-rate loop (smaller where one matmul is slow)")
    parser.add_argument("--allocators", nargs="+", choices=ALLOCATORS, default=list(ALLOCATORS),
                        help="retain: what training uses (pvm_mbrl.training.allocator); default: glibc as it starts")
    parser.add_argument("--override", nargs="+", default=[], metavar="KEY=VALUE",
                        help="further config overrides for every row (e.g. a compile setting)")
    parser.add_argument("--json-out", default=None, help="also append each row to this file as a JSON line")
    args = parser.parse_args()
    if args.warmup < 1:
        parser.error(f"--warmup must be at least 1 (the first warm-up counts the FLOPs), got {args.warmup}")
    spawn = multiprocessing.get_context("spawn")  # a fresh allocator per measurement
    with spawn.Pool(1) as pool:
        threads = pool.apply(torch.get_num_threads) if not args.threads else args.threads
    peak = {}
    for precision in args.precisions:
        with spawn.Pool(1) as pool:
            peak[precision] = pool.apply(matmul_gflops, (precision, args.device, args.threads, args.matmul_size))
    print(f"device {resolve_device(args.device)}, threads {threads}, batch {args.batch} x {args.length}"
          f"; each row in a fresh process")
    print("machine's dense matmul (same threads, fresh process): "
          + ", ".join(f"{p} {g:,.1f} GFLOP/s ({n} x {n})" for p, (g, n) in peak.items()))
    print("GFLOP: one update's matmul + convolution work, forward and backward (torch FlopCounterMode; "
          "element-wise ops not counted); GFLOP/s = that work / (world model + actor-critic) time; "
          "% matmul = GFLOP/s / the machine's matmul rate in the row's precision")
    print(f"{'preset':>9} {'size':>5} {'prec':>5} {'malloc':>8} {'params':>8} {'world model ms':>15} "
          f"{'actor-critic ms':>16} {'total / first row':>18} {'GFLOP':>8} {'GFLOP/s':>8} {'% matmul':>9} "
          f"{'peak GB':>8} {'faults/update':>14}")
    reference = None
    for preset in args.presets:
        for size in args.sizes:
            for precision in args.precisions:
                for allocator in args.allocators:
                    with spawn.Pool(1) as pool:
                        cost, params = pool.apply(measure, (
                            preset, size, precision, args.batch, args.length, args.repeats, args.device,
                            allocator == "retain", args.threads, tuple(args.override), args.warmup))
                    wm_ms, ac_ms, flops = cost.world_model_ms, cost.actor_critic_ms, cost.flops
                    reference = reference or wm_ms + ac_ms
                    achieved = flops / ((wm_ms + ac_ms) / 1000) / 1e9 if flops is not None else None
                    fraction = achieved / peak[precision][0] if achieved is not None else None
                    work = (f"{flops / 1e9:>8.1f} {achieved:>8.1f} {100 * fraction:>8.1f}%" if flops is not None
                            else f"{'-':>8} {'-':>8} {'-':>9}")
                    print(f"{preset:>9} {size:>5} {precision:>5} {allocator:>8} {params:>7.1f}M {wm_ms:>15.0f} "
                          f"{ac_ms:>16.0f} {(wm_ms + ac_ms) / reference:>18.2f} {work} {cost.peak_rss_gb:>8.2f} "
                          f"{cost.faults_per_update:>14,.0f}", flush=True)
                    if args.json_out:
                        row = {"preset": preset, "size": size, "precision": precision, "allocator": allocator,
                               "overrides": args.override, "batch": args.batch, "length": args.length,
                               "params_m": params, "world_model_ms": wm_ms, "actor_critic_ms": ac_ms,
                               "flops": flops, "gflops_per_s": achieved, "matmul_gflops_per_s": peak[precision][0],
                               "matmul_fraction": fraction, "peak_rss_gb": cost.peak_rss_gb,
                               "faults_per_update": cost.faults_per_update, "device": str(resolve_device(args.device))}
                        with open(args.json_out, "a") as file:
                            file.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
