"""World-model and actor-critic update times (ms) per model preset, image size and precision.

    python benchmarks/update_speed.py                          # cpu, size12m, size200m at 64^2 and 128^2
    python benchmarks/update_speed.py --presets cpu --sizes 64 --repeats 5

Batch 16 x 64 (the DreamerV3 default) unless --batch/--length say otherwise. Times are medians of
``--repeats`` updates after one warm-up; compare configurations by the ratios printed in the same run,
not across machines. size200m does not fit a 2-core CPU's patience: pass --presets to choose. Each row
runs in a fresh process, with the allocator setting training uses (``retain``) and glibc's default.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time

import numpy as np
import torch

from pvm_mbrl.dreamer.agent import Agent, autocast
from pvm_mbrl.training.allocator import retain_freed_memory
from pvm_mbrl.training.config import compose_config
from pvm_mbrl.training.loop import resolve_device

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


def time_update(agent: Agent, data: dict[str, torch.Tensor], repeats: int) -> tuple[float, float]:
    """Median ms of (world-model forward+backward, actor-critic forward+backward) over ``repeats``."""
    wm_times, ac_times = [], []
    for i in range(repeats + 1):
        agent.optimizer.zero_grad(set_to_none=True)
        sync(agent.device)
        start = time.perf_counter()
        with autocast(agent.device, agent.cfg.precision):
            losses, post = agent.world_model.loss(data)
        sum(v.mean() for v in losses.values()).backward()
        sync(agent.device)
        middle = time.perf_counter()
        with autocast(agent.device, agent.cfg.precision):
            flat = post.map(lambda x: x.detach().reshape(-1, *x.shape[2:]))
            ac_losses, _, _ = agent.actor_critic.imagination_loss(agent.world_model, flat,
                                                                  data["is_terminal"].reshape(-1))
        sum(v.mean() for v in ac_losses.values()).backward()
        agent.optimizer.step()
        sync(agent.device)
        end = time.perf_counter()
        if i:  # the first update warms up allocators and kernels
            wm_times.append(1000 * (middle - start))
            ac_times.append(1000 * (end - middle))
    return statistics.median(wm_times), statistics.median(ac_times)


def measure(preset: str, size: int, precision: str, batch: int, length: int, repeats: int, device: str,
            retain: bool) -> tuple[float, float, float]:
    """(world-model ms, actor-critic ms, parameters in millions) for one configuration, in this process."""
    if retain:
        retain_freed_memory()
    device = resolve_device(device)
    cfg = compose_config([f"model={preset}", f"env.size={size}", f"precision={precision}",
                          f"batch_length={length}", f"batch_size={batch}"])
    torch.manual_seed(0)
    agent = Agent(cfg, {"image_size": size, "vectors": {}}, 6, False, device)
    data = synthetic_batch(batch, length, size, 6, device)
    wm_ms, ac_ms = time_update(agent, data, repeats)
    return wm_ms, ac_ms, sum(p.numel() for p in agent.parameters()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["cpu", "size12m", "size200m"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 128])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--allocators", nargs="+", choices=ALLOCATORS, default=list(ALLOCATORS),
                        help="retain: what training uses (pvm_mbrl.training.allocator); default: glibc as it starts")
    args = parser.parse_args()
    print(f"device {resolve_device(args.device)}, threads {torch.get_num_threads()}, batch {args.batch} x {args.length}"
          f"; each row in a fresh process")
    print(f"{'preset':>9} {'size':>5} {'prec':>5} {'malloc':>8} {'params':>8} {'world model ms':>15} "
          f"{'actor-critic ms':>16} {'total / first row':>18}")
    reference = None
    spawn = multiprocessing.get_context("spawn")  # a fresh allocator per measurement
    for preset in args.presets:
        for size in args.sizes:
            for precision in args.precisions:
                for allocator in args.allocators:
                    with spawn.Pool(1) as pool:
                        wm_ms, ac_ms, params = pool.apply(measure, (
                            preset, size, precision, args.batch, args.length, args.repeats, args.device,
                            allocator == "retain"))
                    reference = reference or wm_ms + ac_ms
                    print(f"{preset:>9} {size:>5} {precision:>5} {allocator:>8} {params:>7.1f}M {wm_ms:>15.0f} "
                          f"{ac_ms:>16.0f} {(wm_ms + ac_ms) / reference:>18.2f}", flush=True)


if __name__ == "__main__":
    main()
