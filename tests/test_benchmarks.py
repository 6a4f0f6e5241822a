"""The speed benchmarks' own machinery: peers.py's table (our side only), FLOP counting, gpu_check.sh's refusals."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from tests.conftest import TINY

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TINY_MODEL = [o for o in TINY if o.startswith("model.")] + ["model.blocks=2"]


def load_benchmark(name: str) -> ModuleType:
    """A script of benchmarks/ as a module (the folder is not a package; its scripts import each other)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_peers_times_our_side_and_skips_peers_without_a_checkout(capsys):
    peers = load_benchmark("peers")
    code = peers.main(["--sizes", "cpu", "--batches", "2x4", "--precisions", "fp32", "best", "--threads", "1",
                       "--warmup", "0", "--updates", "1", "--rounds", "1", "--image-size", "32",
                       "--override", *TINY_MODEL])
    out = capsys.readouterr().out
    assert code == 0, out
    for name in ("dreamerv3-torch", "r2dreamer"):
        assert re.search(rf"{name}: skipped -- no --peer {name}=PATH\. Get it with: git clone \S+{name}", out), out
    assert "2023 algorithm" not in out  # what differs is printed for the peers that run
    rows = [line for line in out.splitlines() if line.startswith("| cpu's")]
    assert len(rows) == 2, out
    for row, precision in zip(rows, ("fp32", "best"), strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1:4] == ["2x4", precision, "pvm-mbrl"]
        assert float(cells[4].rstrip("M")) > 0  # parameters trained
        low, median = (float(cells[i].replace(",", "")) for i in (5, 6))
        assert 0 < low <= median
        assert cells[7] == "1"  # one process
    assert "bf16 autocast" in rows[1]


def test_peers_compile_mode_compiles_our_side_as_training_does():
    peers = load_benchmark("peers")
    spec = {"preset": "cpu", "image_size": 32, "batch": 2, "length": 4, "overrides": TINY_MODEL, "device": "cpu"}
    for compiled, expected in ((True, "compile=default"), (False, "compile=off")):
        _, _, notes = peers.build_ours({**spec, "precision": "fp32", "compile": compiled})
        assert expected in notes
    assert "--compile" in peers.build_parser().format_help()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where torch has no CUDA device")
def test_peers_on_cuda_refuses_where_torch_has_no_cuda_device():
    peers = load_benchmark("peers")
    with pytest.raises(SystemExit, match="--device cuda, but torch cannot use a CUDA device"):
        peers.main(["--device", "cuda", "--sizes", "cpu", "--batches", "2x4", "--precisions", "fp32"])


def test_peers_arguments_are_checked(tmp_path):
    peers = load_benchmark("peers")
    assert peers.parse_batch("16x64") == (16, 64)
    with pytest.raises(Exception, match="BATCHxLENGTH"):
        peers.parse_batch("16")
    with pytest.raises(Exception, match="one of dreamerv3-torch, r2dreamer"):
        peers.parse_peer(f"other={tmp_path}")
    with pytest.raises(Exception, match="not a directory"):
        peers.parse_peer(f"r2dreamer={tmp_path / 'missing'}")
    assert peers.parse_peer(f"r2dreamer={tmp_path}") == ("r2dreamer", str(tmp_path.resolve()))


def test_update_flops_are_positive_and_grow_with_batch_length():
    from pvm_mbrl.dreamer.agent import Agent
    from pvm_mbrl.training.config import compose_config

    update_speed = load_benchmark("update_speed")
    torch.manual_seed(0)
    cfg = compose_config([*TINY, "model.blocks=2", "actor_critic.imag_length=2"])
    agent = Agent(cfg, {"image_size": 32, "vectors": {}}, 2, False, "cpu")
    flops = {length: update_speed.count_update_flops(agent, update_speed.synthetic_batch(1, length, 32, 2, "cpu"))
             for length in (2, 4)}
    assert 0 < flops[2] < flops[4]


def test_update_cost_reports_time_flops_and_memory():
    from pvm_mbrl.dreamer.agent import Agent
    from pvm_mbrl.training.config import compose_config

    update_speed = load_benchmark("update_speed")
    torch.manual_seed(0)
    cfg = compose_config([*TINY, "model.blocks=2", "actor_critic.imag_length=2"])
    agent = Agent(cfg, {"image_size": 32, "vectors": {}}, 2, False, "cpu")
    calls = []
    loss = agent.world_model_loss
    agent.world_model_loss = lambda *args: calls.append(1) or loss(*args)  # counts updates, runs the real one
    cost = update_speed.time_update(agent, update_speed.synthetic_batch(2, 4, 32, 2, "cpu"), repeats=2, warmup=3)
    assert len(calls) == 3 + 2  # warm-ups (the first counts FLOPs), then the timed updates
    assert cost.world_model_ms > 0 and cost.actor_critic_ms > 0 and cost.flops > 0
    assert cost.faults_per_update >= 0 and 0.05 < cost.peak_rss_gb < 64  # this process: torch is loaded


def test_update_speed_refuses_no_warm_up():
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "update_speed.py"), "--warmup", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--warmup must be at least 1" in proc.stderr


def test_matmul_rate_is_measured():
    update_speed = load_benchmark("update_speed")
    rate, size = update_speed.matmul_gflops("fp32", "cpu", threads=1, n=256, min_seconds=0.02)
    assert rate > 0 and size == 256


def run_gpu_check(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(BENCHMARKS / "gpu_check.sh"), *args], capture_output=True, text=True,
                          env={**os.environ, "GPU_CHECK_PYTHON": sys.executable, **env}, timeout=120)


def test_gpu_check_refuses_to_fall_back_to_the_cpu(tmp_path):
    proc = run_gpu_check(CUDA_VISIBLE_DEVICES="", OUT=str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "CUDA is not available" in proc.stderr and "will not fall back to the CPU" in proc.stderr
    assert not any(tmp_path.iterdir())  # refused before any work


def test_gpu_check_arguments():
    assert subprocess.run(["bash", "-n", str(BENCHMARKS / "gpu_check.sh")]).returncode == 0
    usage = run_gpu_check("--help")
    assert usage.returncode == 0 and "--dry-run" in usage.stdout
    for bad in (["--only", "bogus"], ["--jobs", "0"], ["--budget", "x"], ["--what"], ["--only", "peers"],
                ["--peers", "/nonexistent"]):
        proc = run_gpu_check(*bad)
        assert proc.returncode == 64 and proc.stderr.startswith("gpu_check: "), (bad, proc.stderr)


def test_gpu_check_tells_a_kill_from_its_own_time_limit():
    # On the first GPU check, runs killed for memory after 48 s were reported as "stopped at 157s".
    function = re.search(r"^status_for\(\) \{.*?^\}", (BENCHMARKS / "gpu_check.sh").read_text(), re.S | re.M).group(0)
    cases = {"137 48 157": "failed (killed: SIGKILL before its limit, out of memory?) 48",
             "137 167 157": "stopped at 157s 167", "124 157 157": "stopped at 157s 157", "0 3 9": "ok 3",
             "1 3 9": "failed (exit 1) 3"}
    for args, expected in cases.items():
        proc = subprocess.run(["bash", "-c", f"{function}\nstatus_for {args}"], capture_output=True, text=True)
        assert proc.stdout.strip() == expected, args


def test_gpu_check_turns_the_peers_table_into_rows():
    program = re.search(r"awk -F'\\|' '(.*?)' \"\$logs/peers.log\"", (BENCHMARKS / "gpu_check.sh").read_text(),
                        re.S).group(1)
    table = "\n".join([
        "| size numbers | batch | precision | side | trained | min ms | median ms | runs | peak MiB "
        "| peer/ours min | peer/ours median | notes",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        "| size12m's  | 16x64 | best | pvm-mbrl  |  10.5M | 257 | 342 | 1 | 4,076 |       |       | bf16 |",
        "| size12m's  | 16x64 | best | r2dreamer |  10.5M | 419 | 455 | 1 | 4,102 | 1.63x | 1.33x | fp16 |",
        "| size200m's | 16x64 | fp32 | r2dreamer | failed |", ""])
    proc = subprocess.run(["awk", "-F|", program], input=table, capture_output=True, text=True)
    assert proc.stdout.splitlines() == [
        "size12m's 16x64 best, pvm-mbrl\t257 / 342 ms",
        "size12m's 16x64 best, r2dreamer\t419 / 455 ms, peer/ours 1.63x min, 1.33x median"]


@pytest.mark.slow
def test_gpu_check_dry_run_lists_every_encoder_and_mode_on_cuda():
    proc = run_gpu_check("--dry-run", "--only", "train", CUDA_VISIBLE_DEVICES="")
    assert proc.returncode == 0, proc.stderr
    commands = [line for line in proc.stderr.splitlines() if " train device=cuda " in line]
    runs = {re.search(r"encoder=(\S+)", c).group(1) + (m.group(1) if (m := re.search(r"finetune=(\S+)", c)) else "")
            for c in commands}
    expected = {"cnn"} | {f"{e}{m}" for e in ("efficientnet_lite0", "mobilenet_v2", "dinov2", "clip")
                          for m in ("frozen", "partial", "full")}
    assert runs == expected
    assert all("encoder.weights=" in c for c in commands if "encoder=dinov2" in c or "encoder=clip" in c)
    assert "| train | clip full | dry-run |" in proc.stdout


def test_learning_window_means_follow_dreamerv3s_scores_convention(tmp_path):
    learning = load_benchmark("learning")
    curve = [(1_000 * k, float(k)) for k in range(1, 51)]  # value k logged at step 1,000 k
    assert learning.window_mean(curve, (0, 25_000)) == pytest.approx(13.0)  # mean of 1..25
    assert learning.window_mean(curve, (25_000, 50_000)) == pytest.approx(38.0)  # mean of 26..50
    assert learning.window_mean(curve, (50_000, 100_000)) is None  # the run has not reached 100k
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1000, "episode/return": 5.0}\n{"step": 2000, "episode/re')
    assert learning.read_curve(run) == [(1000, 5.0)]  # a torn last line (a killed run) is skipped
    assert learning.read_curve(tmp_path / "absent") == []
    runs = [learning.Run("dmc:walker-stand", 0, run)]
    summary = learning.summarise(runs, learning.seed_results(runs, {}))
    assert summary["dmc:walker-stand"]["published"]["25000-50000"] == (625, 536, 711)
    assert summary["dmc:walker-stand"]["seeds"][0]["curve"] == [[1000, 5.0]]
    assert "target" not in summary["dmc:walker-stand"]  # no seed reached the judged window's end


def test_learning_merges_seeds_recorded_elsewhere_into_one_table_and_plot(tmp_path):
    learning = load_benchmark("learning")
    here = tmp_path / "seed1"
    here.mkdir()
    (here / "metrics.jsonl").write_text("".join(
        f'{{"step": {1000 * k}, "episode/return": {500.0 + k}}}\n' for k in range(1, 51)))
    earlier = tmp_path / "earlier.json"  # a file from before curves were kept: seed 0's window means only
    earlier.write_text(json.dumps({"dmc:walker-stand": {"seeds": {
        "0": {"0-25000": 150.0, "25000-50000": 600.0, "50000-100000": None},
        "1": {"0-25000": 1.0, "25000-50000": 1.0, "50000-100000": None}}}}))
    recorded = learning.read_recorded(earlier)
    runs = [learning.Run("dmc:walker-stand", seed, tmp_path / f"seed{seed}") for seed in (0, 1)]
    summary = learning.summarise(runs, learning.seed_results(runs, recorded))
    seeds = summary["dmc:walker-stand"]["seeds"]
    assert seeds[0]["25000-50000"] == 600.0  # recorded: no run directory here
    assert seeds[1]["25000-50000"] == pytest.approx(538.0)  # the run here wins over the recorded 1.0
    assert summary["dmc:walker-stand"]["target"]["median"] == pytest.approx(569.0)
    assert summary["dmc:walker-stand"]["target"]["every_seed_at_or_above_minimum"]  # 538 and 600 >= 536
    learning.plot(summary, tmp_path / "learning.png")
    assert (tmp_path / "learning.png").stat().st_size > 10_000
    garbage = tmp_path / "garbage.json"
    garbage.write_text("[1, 2]")
    with pytest.raises(SystemExit, match="garbage.json"):
        learning.read_recorded(garbage)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["inline", "async-env", "collector"])
def test_collector_ways_each_run_the_loops_work(mode):
    load_benchmark("collector")  # puts benchmarks/ on sys.path
    collector = importlib.import_module("collector")  # by its plain name, which the spawned collector imports
    overrides = [*TINY_MODEL, "env.size=32", "batch_size=2", "batch_length=8", "train_ratio=4",
                 "precision=fp32"]
    result = collector.measure(mode, overrides, threads=1, cycles=2)
    assert result["steps_per_update"] == 4  # 2 x 8 replayed steps per update / 4 per agent step
    assert result["agent_steps_per_s"] == pytest.approx(4 * result["updates_per_s"])
    assert result["updates_per_s"] > 0


@pytest.mark.parametrize("way", ["sequential", "parallel"])
def test_parallel_runs_trains_two_real_runs_each_way(tmp_path, way):
    parallel_runs = load_benchmark("parallel_runs")
    overrides = [*TINY_MODEL, "env.size=32", "batch_size=2", "batch_length=8", "train_ratio=4", "precision=fp32",
                 "env.action_repeat=8", "eval_episodes=1"]
    assert parallel_runs.run_way(way, tmp_path, 64, overrides, cores=2) > 0
    for seed in (0, 1):
        assert '"env_steps": 64' in (tmp_path / f"{way}-seed{seed}" / "status.json").read_text()
    with pytest.raises(RuntimeError, match="failed"):
        parallel_runs.run_way(way, tmp_path / "bad", 64, ["train_ratio=-1"], cores=2)


@pytest.mark.slow
def test_encoders_benchmark_times_an_imagenet_cnn_on_small_frames_at_a_chosen_input_size():
    command = [sys.executable, str(BENCHMARKS / "encoders.py"), "--encoders", "efficientnet_lite0", "--frame-size",
               "64", "--batch", "1", "--length", "2", "--repeats", "1", "--precision", "fp32"]
    proc = subprocess.run([*command, "--input-size", "64"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "pre-trained encoders on 64^2 frames, EfficientNet/MobileNet input 64^2" in proc.stdout
    rows = [line.split() for line in proc.stdout.splitlines() if line.split()[:1] == ["efficientnet_lite0"]]
    assert [(r[1], r[2]) for r in rows] == [("frozen", "True"), ("frozen", "False"), ("partial", "True"),
                                            ("partial", "False"), ("full", "False")]
    assert "frozen+cache" in proc.stdout
    bad = subprocess.run([*command, "--input-size", "50"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--input-size" in bad.stderr and "got 50" in bad.stderr
