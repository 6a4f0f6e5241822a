"""Does collecting experience beside learning pay on this device? Agent steps/s of the training loop's work
(act + env step, one update every ``train_ratio``-th replayed step) done three ways:

    python benchmarks/collector.py                                   # dmc:cartpole-balance, cpu preset, ratio 32
    python benchmarks/collector.py --threads 1 --cycles 20

- ``inline``: what ``pvm-mbrl train`` does: the policy acts and the env steps in the learner's process, and every
  ``batch_size x batch_length / train_ratio`` agent steps an update runs; nothing overlaps.
- ``async-env``: the env steps in a worker process (Gymnasium's ``AsyncVectorEnv``); the step before an update is
  sent off first, so its physics and rendering run while the update does.
- ``collector``: a second process holds its own copy of the agent and its own env and collects the next cycle's
  agent steps while the learner updates; the learner sends it fresh weights after every update (the policy acts
  one update behind, as in distributed DreamerV3 set-ups).

Updates are real ``Agent.train_step`` calls on a fixed synthetic batch (replay sampling is not what is measured).
Each way runs in a fresh process; read the ratios to ``inline`` printed in one run. On a GPU the update leaves
the CPU to the env, so overlap can pay there; on a CPU the two compete for the same cores.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import gymnasium as gym
import numpy as np
import torch

from pvm_mbrl.dreamer.agent import Agent, resolve_device
from pvm_mbrl.envs.registry import make_env
from pvm_mbrl.envs.spaces import to_env_action
from pvm_mbrl.rollout.loading import agent_for_env
from pvm_mbrl.training.allocator import retain_freed_memory
from pvm_mbrl.training.config import compose_config
from pvm_mbrl.training.loop import make_vector_env
from update_speed import train_step_batch

MODES = ("inline", "async-env", "collector")


def build(overrides: list[str], threads: int):
    """(config, agent) for the overrides (``device=`` among them), with ``threads`` torch threads here."""
    torch.set_num_threads(threads)
    cfg = compose_config([*overrides, f"threads={threads}"])
    torch.manual_seed(cfg.seed)
    return cfg, agent_for_env(cfg, resolve_device(cfg.device))


class Actor:
    """The policy stepping one env (in this process, or in a worker for ``asynchronous``)."""

    def __init__(self, cfg, agent: Agent, asynchronous: bool):
        self.agent = agent
        self.env = (gym.vector.AsyncVectorEnv([lambda: make_env(cfg.env, cfg.seed)], context="spawn")
                    if asynchronous else make_vector_env(cfg, cfg.seed))
        self.obs, _ = self.env.reset(seed=[cfg.seed])
        self.is_first = np.ones(1, bool)
        self.state = agent.initial_state(1)

    def act(self) -> np.ndarray:
        action, self.state = self.agent.act({**self.obs, "is_first": self.is_first}, self.state)
        return to_env_action(action, self.agent.discrete)

    def received(self, obs, terminated, truncated) -> None:
        self.obs, self.is_first = obs, terminated | truncated

    def step(self) -> None:
        obs, _, terminated, truncated, _ = self.env.step(self.act())
        self.received(obs, terminated, truncated)


def collector_process(overrides: list[str], connection) -> None:
    """The ``collector`` way's second process: on each request, load the weights sent, step ``count`` times."""
    cfg, agent = build(overrides, threads=1)
    actor = Actor(cfg, agent, asynchronous=False)
    while (request := connection.recv()) is not None:
        weights, count = request
        agent.load_state_dict(weights)
        for _ in range(count):
            actor.step()
        connection.send(count)


def measure(mode: str, overrides: list[str], threads: int, cycles: int) -> dict[str, float]:
    """Agent steps/s and updates/s over ``cycles`` (steps per update, then one update) after one warm-up cycle."""
    retain_freed_memory()
    cfg, agent = build(overrides, threads)
    steps_per_update = max(1, round(cfg.batch_size * cfg.batch_length / cfg.train_ratio))
    batch = {k: v.cpu().numpy() for k, v in train_step_batch(agent, cfg.batch_size, cfg.batch_length,
                                                       cfg.env.size).items()}
    batch["action"] = batch["action"][..., :agent.action_dim]
    collector = None
    if mode == "collector":
        parent, child = multiprocessing.get_context("spawn").Pipe()
        collector = multiprocessing.get_context("spawn").Process(target=collector_process, args=(overrides, child))
        collector.start()
    else:
        actor = Actor(cfg, agent, asynchronous=mode == "async-env")

    def cycle() -> None:
        if mode == "collector":
            parent.send(({k: v.detach().clone() for k, v in agent.state_dict().items()}, steps_per_update))
            agent.train_step(batch)
            while not parent.poll(1.0):  # a collector that died (e.g. could not start) must not hang the run
                if not collector.is_alive():
                    raise RuntimeError(f"the collector process exited with status {collector.exitcode}")
            parent.recv()
            return
        for _ in range(steps_per_update - 1):
            actor.step()
        if mode == "async-env":  # the last step's env work overlaps the update
            actor.env.step_async(actor.act())
            agent.train_step(batch)
            obs, _, terminated, truncated, _ = actor.env.step_wait()
            actor.received(obs, terminated, truncated)
        else:
            actor.step()
            agent.train_step(batch)

    try:
        cycle()  # warm-up: the collector process starts, allocators and kernels warm up
        start = time.perf_counter()
        for _ in range(cycles):
            cycle()
        elapsed = time.perf_counter() - start
    finally:
        if collector is not None:
            parent.send(None)
            collector.join()
        else:
            actor.env.close()
    return {"agent_steps_per_s": cycles * steps_per_update / elapsed, "updates_per_s": cycles / elapsed,
            "steps_per_update": steps_per_update}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="dmc:cartpole-balance")
    parser.add_argument("--train-ratio", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="the learner's torch threads")
    parser.add_argument("--cycles", type=int, default=12, help="timed cycles (steps per update, then an update)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--device", default="auto", help="the learner's (and the collector's) torch device")
    parser.add_argument("overrides", nargs="*", help="extra config overrides (default model: the cpu preset)")
    args = parser.parse_args()
    overrides = [f"env.name={args.env}", f"train_ratio={args.train_ratio}", "batch_length=16",
                 f"device={args.device}", *args.overrides]
    print(f"{args.env}, train ratio {args.train_ratio}, learner threads {args.threads}, {args.cycles} cycles; "
          "each way in a fresh process")
    print(f"{'way':>10} {'agent steps/s':>14} {'updates/s':>10} {'vs inline':>10}")
    reference = None
    for mode in args.modes:
        # Not a multiprocessing.Pool: its daemonic workers may not start the env or collector processes.
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            result = pool.submit(measure, mode, overrides, args.threads, args.cycles).result()
        reference = reference or result["agent_steps_per_s"]
        print(f"{mode:>10} {result['agent_steps_per_s']:>14.2f} {result['updates_per_s']:>10.3f} "
              f"{result['agent_steps_per_s'] / reference:>9.2f}x", flush=True)


if __name__ == "__main__":
    main()
