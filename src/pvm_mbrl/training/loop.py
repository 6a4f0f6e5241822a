"""The training loop: collect with the policy, replay at ``train_ratio``, log, evaluate, checkpoint, resume.

One run directory (``pvm_mbrl.rundir``) holds everything: config, metrics, replay chunks, checkpoint and status.
Running the same command on it again resumes from the last checkpoint; Ctrl-C (or SIGTERM) writes a checkpoint
before exiting (exit status 130, or 143 after SIGTERM). A run that fails (diverged, or a checkpoint it cannot write)
marks its status failed with the reason and keeps its last good checkpoint, with the one before it beside it (see
``pvm_mbrl.checkpoint``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from pvm_mbrl.checkpoint import (
    format_bytes,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
    seed_everything,
    writing_checkpoint,
)
from pvm_mbrl.dreamer.agent import Agent, resolve_device, use_threads
from pvm_mbrl.envs.registry import make_batched_env, make_env
from pvm_mbrl.envs.spaces import action_info, observation_info, random_actions, to_env_action
from pvm_mbrl.errors import RunError, handle_stop_signals, raise_interrupt_then, restore_signal_handlers
from pvm_mbrl.locks import directory_lock
from pvm_mbrl.replay.buffer import ReplayBuffer, capacity_for_run
from pvm_mbrl.rollout.episodes import EVAL_SEED_OFFSET, run_episodes
from pvm_mbrl.rundir import ENV_STEPS_PER_S, RunDir, TrainerState
from pvm_mbrl.training.allocator import retain_freed_memory
from pvm_mbrl.training.config import resume_conflicts, sequence_length, to_yaml
from pvm_mbrl.training.guard import DivergenceGuard
from pvm_mbrl.training.logger import MeanTracker, MetricsLogger, ProgressLine
from pvm_mbrl.training.schedule import Every, Ratio

PROGRESS_KEYS = ("episode/return", "eval/return", "loss/rec", "loss/dyn")


def make_vector_env(cfg: DictConfig, seed: int) -> gym.vector.VectorEnv:
    """The family's batched simulator where it has one (GPU), else several envs in worker processes (one
    in-process env when ``num_envs == 1``).

    DreamerV3-style auto-reset: after an episode ends, the next step returns the reset observation.
    """
    batched = make_batched_env(cfg.env, seed)
    if batched is not None:
        return batched
    fns = [lambda i=i: make_env(cfg.env, seed + i) for i in range(cfg.env.num_envs)]
    if cfg.env.num_envs == 1:
        return gym.vector.SyncVectorEnv(fns)
    return gym.vector.AsyncVectorEnv(fns, context="spawn")


class Trainer:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.run_dir = Path(cfg.run_dir)
        self.files = RunDir(self.run_dir)
        self.device = resolve_device(cfg.device)
        use_threads(cfg.threads)
        self.resuming = self.files.checkpoint.exists()
        self._check_run_dir()
        seed_everything(cfg.seed)
        probe = make_env(cfg.env, cfg.seed)
        self.obs_info = observation_info(probe.observation_space)
        self.action_space = probe.action_space
        probe.close()
        action_dim, discrete = action_info(self.action_space)
        self.agent = Agent(cfg, self.obs_info, action_dim, discrete, self.device)
        capacity = capacity_for_run(cfg.replay_capacity, cfg.steps, self.action_repeat, cfg.env.num_envs)
        self.replay = ReplayBuffer(capacity, cfg.env.num_envs, self.files.replay,
                                   seed=cfg.seed, storage=cfg.replay_storage, online_length=self.sequence_length)
        retain_freed_memory()
        self.action_rng = np.random.default_rng(cfg.seed)
        self.env_steps = self.updates = self.episodes = 0
        self.evaluated_at = 0  # env step of the last finished evaluation: one cut short is run again on resume
        self.update_ratio = Ratio(cfg.train_ratio / (cfg.batch_size * cfg.batch_length))
        self.guard = DivergenceGuard(cfg.divergence_patience)
        if self.resuming:
            self._restore(load_checkpoint(self.files.checkpoint, self.device))
            self.guard.checkpointed(self.files.checkpoint, self.env_steps)

    # ---------------------------------------------------------------- run directory
    def _check_run_dir(self) -> None:
        config_path = self.files.config
        current = OmegaConf.to_container(self.cfg, resolve=True)
        if self.resuming:
            diffs = resume_conflicts(OmegaConf.to_container(OmegaConf.load(config_path), resolve=True), current)
            if diffs:
                raise ValueError(f"run directory {self.run_dir} holds a run with a different config; "
                                 f"use another run_dir or the same settings. Differences: {'; '.join(diffs)}")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config_path.write_text(to_yaml(self.cfg))

    @property
    def action_repeat(self) -> int:
        return int(self.cfg.env.action_repeat)

    @property
    def sequence_length(self) -> int:
        return sequence_length(self.cfg)

    def update(self) -> dict[str, float]:
        """One training update on a replay batch; the posteriors it computed go back into replay."""
        stream, rows = self.replay.sample_positions(self.cfg.batch_size, self.sequence_length)
        metrics, latents = self.agent.train_step(self.replay.gather((stream, rows)))
        if latents:
            self.replay.write((stream, rows[:, self.cfg.replay_context:]), latents)
        return self.guard.observe(metrics)

    def checkpoint(self, state: TrainerState) -> None:
        """Write the checkpoint and the status; on failure mark the status failed and raise ``RunError``."""
        path = self.files.checkpoint
        with writing_checkpoint(path, self.mark_failed):
            self.replay.save()  # chunk files first: the checkpoint then never points at missing replay
            size = save_checkpoint(path, {
                "agent": self.agent.checkpoint_state(),
                "replay": self.replay.state(),
                "counters": {"env_steps": self.env_steps, "updates": self.updates, "episodes": self.episodes,
                             "updates_owed": self.update_ratio.owed, "evaluated_at": self.evaluated_at},
                "rng": rng_state(),
                "action_rng": self.action_rng.bit_generator.state,
            })
        print(f"[train] checkpoint at env step {self.env_steps:,}: {path} ({format_bytes(size)})", flush=True)
        self.guard.checkpointed(path, self.env_steps)
        self.write_status(state)

    def _restore(self, state: dict) -> None:
        self.agent.load_checkpoint_state(state["agent"])
        self.replay.load_state(state["replay"])
        counters = state["counters"]
        self.env_steps, self.updates = counters["env_steps"], counters["updates"]
        self.episodes, self.update_ratio.owed = counters["episodes"], counters["updates_owed"]
        self.evaluated_at = counters.get("evaluated_at", self.env_steps)  # older checkpoints did not record it
        restore_rng_state(state["rng"])
        self.action_rng.bit_generator.state = state["action_rng"]

    def write_status(self, state: TrainerState, reason: str | None = None) -> None:
        extra = {"reason": reason} if reason else {}
        self.files.write_status(state, self.env_steps, int(self.cfg.steps), self.updates, time.time(), **extra)

    def mark_failed(self, error: RunError) -> None:
        """The status says failed, with the reason; a full disk may refuse even that (then it is said)."""
        try:
            self.write_status(TrainerState.FAILED, str(error))
        except OSError as status_error:
            print(f"[train] could not mark {self.files.status_path} failed: {status_error}", flush=True)

    # ---------------------------------------------------------------- loop
    def run(self) -> dict[str, float]:
        """Train to ``cfg.steps`` env steps (resuming if a checkpoint exists); returns the last eval."""
        cfg = self.cfg
        logger = MetricsLogger(self.files)
        progress = ProgressLine(int(cfg.steps), self.env_steps)
        # Each stop signal checkpoints and exits, also where SIGINT was inherited as ignored (a job started with `&`).
        previous_handlers = handle_stop_signals(_interrupt_training)
        if self.resuming:
            print(f"[train] resuming {self.run_dir} at env step {self.env_steps:,}", flush=True)
        print(f"[train] {self.run_dir}: device {self.device}, precision {self.agent.precision}, "
              f"{sum(p.numel() for p in self.agent.parameters()):,} parameters", flush=True)
        last_eval: dict[str, float] = {}
        try:
            last_eval = self._loop(logger, progress)
            self.checkpoint(TrainerState.FINISHED if self.env_steps >= cfg.steps else TrainerState.STOPPED)
        except KeyboardInterrupt:
            print(f"[train] interrupted at env step {self.env_steps:,}: writing checkpoint", flush=True)
            with signals_deferred():  # a second Ctrl-C must not cut the checkpoint short
                self.checkpoint(TrainerState.INTERRUPTED)
            raise
        except RunError as error:
            self.mark_failed(error)
            raise
        finally:
            restore_signal_handlers(previous_handlers)
            logger.close()
        return last_eval

    def _loop(self, logger: MetricsLogger, progress: ProgressLine) -> dict[str, float]:
        cfg, n = self.cfg, int(self.cfg.env.num_envs)
        venv = make_vector_env(cfg, cfg.seed * 10_000 + self.env_steps)
        eval_env = None
        obs, _ = venv.reset(seed=[cfg.seed * 10_000 + self.env_steps + i for i in range(n)])
        is_first, is_last, is_terminal = np.ones(n, bool), np.zeros(n, bool), np.zeros(n, bool)
        reward = np.zeros(n, np.float32)
        action = np.zeros((n, self.agent.action_dim), np.float32)
        agent_state = self.agent.initial_state(n)
        episode_return, episode_length = np.zeros(n), np.zeros(n, np.int64)
        tracker, last_eval, announced_replay = MeanTracker(), {}, False
        log_due, eval_due = Every(cfg.log_every, self.env_steps), Every(cfg.eval_every, self.evaluated_at)
        checkpoint_due = Every(cfg.checkpoint_every, self.env_steps)
        interval_start, interval_steps, interval_updates = time.time(), self.env_steps, self.updates
        deadline = time.time() + 60 * cfg.time_limit_minutes if cfg.time_limit_minutes else float("inf")
        try:
            while self.env_steps < cfg.steps:
                if time.time() > deadline:
                    print(f"[train] time limit of {cfg.time_limit_minutes} min reached at env step "
                          f"{self.env_steps:,}; re-run the command to continue", flush=True)
                    break
                action = np.where(is_first[:, None], 0.0, action).astype(np.float32)
                if self.agent.caches_features:  # computed once here, so updates never run the frozen encoder
                    obs = {**obs, "encoder_cache": self.agent.encoder_cache(obs["image"]),
                           "image": self.agent.replay_image(obs["image"])}  # kept only as the decoder's target
                # The policy reads obs first: replay stores the posterior it formed beside the step.
                next_action, agent_state = self.agent.act({**obs, "is_first": is_first}, agent_state)
                next_action = self.guard.finite_actions(next_action)
                if self.env_steps < cfg.prefill:
                    next_action = random_actions(self.action_space, n, self.action_rng)
                    agent_state = (agent_state[0], torch.as_tensor(next_action, device=self.agent.device))
                latent = self.agent.replay_latent(agent_state[0]) if cfg.replay_context else {}
                self.replay.add({**obs, "action": action, "reward": reward, "is_first": is_first,
                                 "is_last": is_last, "is_terminal": is_terminal, **latent})
                if not announced_replay:
                    announced_replay = True
                    capacity_gib = self.replay.bytes_per_step * self.replay.capacity / 2**30
                    print(f"[train] replay: {self.replay.bytes_per_step:,} bytes per step, {capacity_gib:.2f} GiB "
                          f"at capacity {self.replay.capacity:,} (replay_capacity {cfg.replay_capacity:,}, at most "
                          "the run's agent steps)", flush=True)
                action = next_action
                obs, reward, terminated, truncated, _ = venv.step(to_env_action(action, self.agent.discrete))
                reward = reward.astype(np.float32)
                is_first, is_last, is_terminal = is_last, terminated | truncated, terminated
                self.env_steps += n * self.action_repeat
                episode_return = np.where(is_first, 0.0, episode_return + reward)
                episode_length = np.where(is_first, 0, episode_length + 1)
                for i in np.flatnonzero(is_last):
                    self.episodes += 1
                    tracker.add({"episode/return": episode_return[i], "episode/length": episode_length[i]})

                # DreamerV3 starts training once replay can sample batch_size x batch_length sequences.
                if (self.env_steps >= cfg.prefill
                        and self.replay.sequences(self.sequence_length) >= cfg.batch_size * cfg.batch_length):
                    self.update_ratio.add(n)
                    while self.update_ratio.take():
                        tracker.add(self.update())
                        self.updates += 1

                if eval_due(self.env_steps) or self.env_steps >= cfg.steps:
                    eval_env = eval_env or make_env(cfg.env, cfg.seed + EVAL_SEED_OFFSET)
                    seeds = [EVAL_SEED_OFFSET + self.env_steps + k for k in range(cfg.eval_episodes)]
                    returns = [r["return"] for r in run_episodes(self.agent, eval_env, seeds)]
                    last_eval = {"eval/return": float(np.mean(returns)), "eval/return_std": float(np.std(returns))}
                    logger.write(self.env_steps, last_eval)
                    self.evaluated_at = self.env_steps
                if log_due(self.env_steps) or self.env_steps >= cfg.steps:
                    elapsed = max(time.time() - interval_start, 1e-9)
                    metrics = tracker.pop()
                    metrics[ENV_STEPS_PER_S] = (self.env_steps - interval_steps) / elapsed
                    metrics["speed/updates_per_s"] = (self.updates - interval_updates) / elapsed
                    metrics["replay/steps"] = len(self.replay)
                    metrics["replay/bytes_per_step"] = self.replay.bytes_per_step
                    metrics.update(self.guard.metrics())
                    logger.write(self.env_steps, metrics)
                    shown = {k: v for k, v in {**metrics, **last_eval}.items() if k in PROGRESS_KEYS}
                    progress.show(self.env_steps, {**shown, "updates": self.updates, **self.guard.progress()})
                    interval_start, interval_steps = time.time(), self.env_steps
                    interval_updates = self.updates
                if self.guard.healthy and checkpoint_due(self.env_steps):  # not while updates are skipped
                    self.checkpoint(TrainerState.RUNNING)
        finally:
            venv.close()
            if eval_env is not None:
                eval_env.close()
        return last_eval


def _say_still_checkpointing(signum, frame):  # noqa: ARG001 - signal handler signature
    print(f"[train] signal {signum} again: still writing the checkpoint, exiting right after", flush=True)


_interrupt_training = raise_interrupt_then(_say_still_checkpointing)  # later signals only print


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Stop signals only print a line inside the block (the interrupt is already being handled)."""
    previous = handle_stop_signals(_say_still_checkpointing)
    try:
        yield
    finally:
        restore_signal_handlers(previous)


def train(cfg: DictConfig) -> dict[str, float]:
    """Train (or resume) the run in ``cfg.run_dir``, holding its lock so no second writer can interleave."""
    with directory_lock(cfg.run_dir, "train"):
        return Trainer(cfg).run()
