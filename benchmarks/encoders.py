"""Update time per encoder x fine-tuning mode, with and without feature caching, as ratios to the CNN baseline.

    python benchmarks/encoders.py                                  # CPU: batch 4 x 16, cpu model preset
    python benchmarks/encoders.py --device cuda --precision bf16 --batch 16 --length 64 --preset size12m
    python benchmarks/encoders.py --encoders efficientnet_lite0 --frame-size 64 --input-size 128   # dmc-shift's

DINOv2 ViT-S/14 and CLIP ViT-B/32 are built at their real sizes from their configs with random weights,
saved with ``save_pretrained`` and loaded by path (no weights can be downloaded here; the cost is the same).
EfficientNet-Lite0 and MobileNetV2 use their real packaged weights. Every configuration reconstructs at the
same decoder size, so the ratios isolate the encoder path; the reference is the paper's CNN baseline at
128^2 (a 64^2 CNN row is printed too). The pre-trained encoders see ``--frame-size`` frames (224^2 by default;
64^2 as the DMC studies render), resized to their input size (``--input-size`` for EfficientNet-Lite0 and
MobileNetV2; the ViTs keep theirs). Targets: frozen PVM with caching <= 1.3x the CNN
baseline; partial with prefix caching >= 2.5x faster than partial without. Prefix caching removes only the
frozen prefix's forward pass, so beside each speed-up it prints the bound (cached update + prefix forward) /
cached update, with the prefix forward measured on the same images; ``--trainable-blocks N`` changes how many
blocks train in partial mode. Also prints replay bytes per step and what 1M steps take, the budget behind
``replay_storage``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch
from omegaconf import OmegaConf, open_dict

from pvm_mbrl.dreamer.agent import Agent, autocast, resolve_device
from pvm_mbrl.encoders.conv_backbone import check_input_size
from pvm_mbrl.training.allocator import retain_freed_memory
from pvm_mbrl.training.config import compose_config

MODES = ("frozen", "partial", "full")
BASELINE = "128px"


def save_random_vits(directory: str, names: list[str]) -> dict[str, str]:
    """Those of ViT-S/14 (DINOv2-small's architecture) and CLIP ViT-B/32's vision tower that ``names`` holds,
    random weights, saved to disk."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, Dinov2Config, Dinov2Model

    models = {"dinov2": lambda: Dinov2Model(Dinov2Config(hidden_size=384, num_attention_heads=6,
                                                          intermediate_size=1536)),
              "clip": lambda: CLIPVisionModel(CLIPVisionConfig())}
    paths = {}
    for name in (n for n in names if n in models):
        paths[name] = f"{directory}/{name}"
        models[name]().save_pretrained(paths[name])
    return paths


def make_batch(agent: Agent, batch: int, length: int, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    images = rng.integers(0, 256, (batch, length, size, size, 3), dtype=np.uint8)
    data = {
        "action": rng.uniform(-1, 1, (batch, length, agent.action_dim)).astype(np.float32),
        "reward": rng.normal(size=(batch, length)).astype(np.float32),
        "is_first": np.zeros((batch, length), bool), "is_last": np.zeros((batch, length), bool),
        "is_terminal": np.zeros((batch, length), bool),
    }
    flat = images.reshape(-1, size, size, 3)
    if agent.caches_features:  # what collection would have stored
        cache = agent.encoder_cache(flat)
        data["encoder_cache"] = cache.reshape(batch, length, *cache.shape[1:])
        data["image"] = agent.replay_image(flat).reshape(batch, length, *agent.replay_image(flat[:1]).shape[1:])
    else:
        data["image"] = images
    return data


def median_ms(work: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median ms of ``work()`` over ``repeats`` calls after one warm-up call."""
    times = []
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first call warms up
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def time_updates(agent: Agent, data: dict[str, np.ndarray], repeats: int) -> float:
    return median_ms(lambda: agent.train_step(data), repeats, agent.device)


def time_prefix(agent: Agent, count: int, repeats: int, rng: np.random.Generator) -> float:
    """Median ms of the frozen prefix's forward pass (preprocessing, stem, frozen blocks) over ``count`` images:
    the work prefix caching removes from an update."""
    encoder = agent.world_model.encoder
    size = encoder.image_size
    images = torch.as_tensor(rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8), device=agent.device)

    def prefix() -> None:
        with torch.no_grad(), autocast(agent.device, agent.precision):
            encoder.prefix(images.float())

    return median_ms(prefix, repeats, agent.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", nargs="+", default=["dinov2", "clip", "efficientnet_lite0", "mobilenet_v2"])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=16)
    parser.add_argument("--decoder-size", type=int, default=64)
    parser.add_argument("--precision", default="auto", help="auto | bf16 | fp32 (auto: bf16 where native)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--frame-size", type=int, default=224, help="env frame size for the pre-trained encoders")
    parser.add_argument("--input-size", type=int, default=None,
                        help="encoder.input_size of EfficientNet-Lite0 / MobileNetV2 (default: theirs, 224)")
    parser.add_argument("--trainable-blocks", type=int, default=None,
                        help="blocks that train in partial mode (default: the encoder's, a quarter)")
    args = parser.parse_args()
    if args.input_size is not None:
        try:
            check_input_size(args.input_size)
        except ValueError as error:
            parser.error(f"--input-size: {error}")
    device = resolve_device(args.device)
    retain_freed_memory()  # as training does
    rng = np.random.default_rng(0)
    base = [f"model={args.preset}", f"precision={args.precision}", f"batch_size={args.batch}",
            f"batch_length={args.length}", f"encoder.decoder_size={args.decoder_size}"]
    print(f"device {device}, threads {torch.get_num_threads()}, {args.precision}, batch {args.batch} x {args.length}, "
          f"model {args.preset}, decoder {args.decoder_size}^2, pre-trained encoders on {args.frame_size}^2 frames"
          f"{f', EfficientNet/MobileNet input {args.input_size}^2' if args.input_size else ''}")
    header = (f"{'encoder':>19} {'mode':>8} {'cache':>6} {'update ms':>10} {'x CNN':>7} {'replay B/step':>14} "
              f"{'1M steps GiB':>13}")
    print(header)
    rows: dict[tuple[str, str, bool], float] = {}
    prefix_ms: dict[str, float] = {}  # the frozen prefix's forward pass over one batch's images

    def run(name: str, size: int, options: dict, mode: str = "-", cache: bool = False) -> None:
        cfg = compose_config([*base, f"env.size={size}", f"encoder={name}"])
        with open_dict(cfg):
            cfg.encoder = OmegaConf.merge(cfg.encoder, {k: v for k, v in options.items() if v is not None})
        torch.manual_seed(0)
        agent = Agent(cfg, {"image_size": size, "vectors": {}}, 6, False, device)
        data = make_batch(agent, args.batch, args.length, size, rng)
        ms = time_updates(agent, data, args.repeats)
        rows[(name, mode, cache)] = ms
        if mode == "partial" and cache:
            prefix_ms[name] = time_prefix(agent, args.batch * args.length, args.repeats, rng)
        step_bytes = sum(v[0, 0].nbytes for v in data.values())
        reference = rows[("cnn", BASELINE, False)]
        print(f"{name:>19} {mode:>8} {str(cache):>6} {ms:>10.0f} {ms / reference:>7.2f} {step_bytes:>14,} "
              f"{step_bytes * 1e6 / 2**30:>13.1f}", flush=True)

    run("cnn", 128, {}, BASELINE)  # the paper's baseline: the CNN at 128^2, one extra stage
    run("cnn", 64, {}, "64px")
    with tempfile.TemporaryDirectory() as directory:
        paths = save_random_vits(directory, args.encoders)
        for name in args.encoders:
            # --input-size reaches the encoders whose config has the setting (the ImageNet CNNs; the ViTs lack it).
            resizable = "input_size" in compose_config([f"encoder={name}"]).encoder
            for mode in MODES:
                for cache in ((True, False) if mode != "full" else (False,)):
                    run(name, args.frame_size, {"weights": paths.get(name), "finetune": mode, "cache": cache,
                                                "trainable_blocks": args.trainable_blocks,
                                                "input_size": args.input_size if resizable else None}, mode, cache)
    print("\ntargets (bound: what removing the prefix's forward pass alone can give, (cached + prefix) / cached):")
    cnn = rows[("cnn", BASELINE, False)]
    for name in args.encoders:
        frozen = rows[(name, "frozen", True)] / cnn
        cached = rows[(name, "partial", True)]
        speedup = rows[(name, "partial", False)] / cached
        bound = (cached + prefix_ms[name]) / cached
        print(f"  {name:>19}: frozen+cache {frozen:.2f}x CNN ({'ok' if frozen <= 1.3 else 'MISSED'} <= 1.3); "
              f"partial cache speed-up {speedup:.2f}x ({'ok' if speedup >= 2.5 else 'MISSED'} >= 2.5; "
              f"prefix forward {prefix_ms[name]:.0f} ms, bound {bound:.2f}x)")


if __name__ == "__main__":
    main()
