"""The DreamerV3 agent: acting in the environment and one combined training update."""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from pvm_mbrl.dreamer.actor_critic import ActorCritic
from pvm_mbrl.dreamer.optim import LaProp, gradients_finite
from pvm_mbrl.dreamer.rssm import RSSMState
from pvm_mbrl.dreamer.world_model import WorldModel
from pvm_mbrl.encoders.registry import make_encoder

WORLD_MODEL_LOSSES = ("rec", "vec", "rew", "con", "dyn", "rep")
NONFINITE_FLAG = "train/nonfinite"  # in an update's metrics: 1.0 when it was skipped, 0.0 when applied
NONFINITE_PREFIX = "nonfinite/"     # ``nonfinite/<term>: 1.0`` for each loss term (or ``gradients``) at fault


def nonfinite_terms(terms: list[str], scaled: list[float], total: float, finite_grads: bool) -> list[str]:
    """The loss terms whose scaled mean is inf or NaN; else ``total`` when only the sum overflowed, else
    ``gradients`` when only they are non-finite; empty for a sound update."""
    faults = [term for term, value in zip(terms, scaled, strict=True) if not math.isfinite(value)]
    if not faults and not math.isfinite(total):
        faults = ["total"]
    if not faults and not finite_grads:
        faults = ["gradients"]
    return faults


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: CUDA GPUs that support it, CPUs with AVX512-BF16 or AMX.

    On other CPUs (e.g. AVX2 only) bf16 autocast emulates: an update measured ~6x slower than fp32 here.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use device=cpu or device=auto")
    return torch.device(name)


def use_threads(threads: int) -> None:
    """torch's CPU threads: ``threads``, or every core for 0 (the ``threads`` setting)."""
    torch.set_num_threads(threads or os.cpu_count() or 1)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` becomes bf16 where the device computes it natively, else fp32; bf16 and fp32 stay."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or CUDA when ``precision == 'bf16'``; no-op for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compiled(function, mode: str):
    """``function`` through ``torch.compile`` in ``mode`` (``default``, or ``reduce-overhead``, which adds CUDA
    graphs on CUDA and is ``default`` on CPU), unchanged for ``off``. Shapes are fixed by the batch, so one
    graph serves a run."""
    if mode == "off":
        return function
    # Dynamo traces through ``device_bins``'s cache and warns; the function is pure, so the warning is moot.
    warnings.filterwarnings("ignore", message="Dynamo detected a call to a `functools.lru_cache`")
    return torch.compile(function, mode=mode, dynamic=False)


class Agent(nn.Module):
    """World model + actor-critic with one LaProp optimiser over all trainable parameters."""

    def __init__(self, cfg: DictConfig, obs_space_info: dict, action_dim: int, discrete: bool,
                 device: torch.device | str = "cpu"):
        super().__init__()
        self.cfg, self.discrete, self.action_dim = cfg, discrete, action_dim
        self.device = torch.device(device)
        self.precision = resolve_precision(cfg.precision, self.device)
        model = cfg.model
        encoder = make_encoder(cfg.encoder, obs_space_info["image_size"], model.depth)
        decoder_size = cfg.encoder.get("decoder_size") or obs_space_info["image_size"]
        self.world_model = WorldModel(encoder, action_dim, model, decoder_size, obs_space_info.get("vectors"))
        self.actor_critic = ActorCritic(self.world_model.rssm.feature_dim, action_dim, discrete, model,
                                        cfg.actor_critic)
        self.scales = dict(cfg.loss_scales)
        self.to(self.device)
        # The update's two big functions, compiled once per agent with ``cfg.compile`` (acting stays eager).
        compile_mode = cfg.get("compile", "off")
        self.world_model_loss = compiled(self.world_model.loss, compile_mode)
        self.imagination_loss = compiled(self.actor_critic.imagination_loss, compile_mode)

        self.optimizer = LaProp(self.parameter_groups(), lr=cfg.optim.lr, eps=cfg.optim.eps, agc=cfg.optim.agc,
                                warmup=cfg.optim.warmup)

    def parameter_groups(self) -> list[dict]:
        """Encoder groups (which may carry their own learning rate) and one group for everything else."""
        lr = self.cfg.optim.lr
        encoder_groups = self.world_model.encoder.parameter_groups(lr)
        encoder_ids = {id(p) for p in self.world_model.encoder.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in encoder_ids]
        return [{"name": "model", "params": rest, "lr": lr}, *encoder_groups]

    # ---------------------------------------------------------------- acting
    @property
    def caches_features(self) -> bool:
        """Whether replay stores the encoder's frozen computation (see ``PretrainedEncoder``)."""
        return self.world_model.encoder.caches

    @torch.no_grad()
    def replay_image(self, images: np.ndarray) -> np.ndarray:
        """What replay stores of an image when the encoder caches: only the decoder's target resolution."""
        resized = self.world_model.resize_to_decoder(torch.as_tensor(images))
        return resized.round().clamp(0, 255).to(torch.uint8).numpy()

    @torch.no_grad()
    def encoder_cache(self, images: np.ndarray) -> np.ndarray:
        """The encoder's cache for a batch of uint8 images, as fp16 numpy for replay."""
        with autocast(self.device, self.precision):
            cache = self.world_model.encoder.cache(torch.as_tensor(images, device=self.device))
        return cache.to(torch.float16).cpu().numpy()

    @torch.no_grad()
    def replay_latent(self, latent: RSSMState) -> dict[str, np.ndarray]:
        """The posterior latent replay stores beside a step (``replay_context``), as numpy."""
        return {k: v.cpu().numpy() for k, v in self.world_model.rssm.replay_entry(latent).items()}

    def initial_state(self, batch: int) -> tuple[RSSMState, torch.Tensor]:
        return (self.world_model.rssm.initial(batch, self.device),
                torch.zeros(batch, self.action_dim, device=self.device))

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], state: tuple[RSSMState, torch.Tensor], greedy: bool = False,
            ) -> tuple[np.ndarray, tuple[RSSMState, torch.Tensor]]:
        """One policy step for a batch of observations; ``state`` carries latent and previous action."""
        latent, prev_action = state
        data = {k: torch.as_tensor(v, device=self.device) for k, v in obs.items()}
        with autocast(self.device, self.precision):
            embed = self.world_model.embed(data)
            latent = self.world_model.rssm.obs_step(latent, prev_action, embed, data["is_first"])
            policy = self.actor_critic.policy(latent.feature())
            action = policy.mode() if greedy else policy.sample()
        action = action.float()
        if not self.discrete:
            action = action.clamp(-1.0, 1.0)
        return action.cpu().numpy(), (latent, action)

    # ---------------------------------------------------------------- learning
    def train_step(self, batch: dict[str, np.ndarray]) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """One update of world model, actor and critic from a replay batch ``[B, T, ...]``.

        With replay context (the batch holds ``latent_*`` keys and is ``T + 1`` long), the RSSM starts from the
        latent stored with the first step and learns on the other T, as DreamerV3's ``replay_context: 1``.
        Returns the metrics and the T posterior latents to write back to replay (empty without context).

        An update whose scaled loss terms or gradients are not all finite is skipped: no optimiser step, no
        slow-critic step, buffers (the return normaliser's) restored, no latents returned. Its metrics then hold
        ``train/nonfinite: 1`` and ``nonfinite/<term>: 1`` for each term at fault (``gradients`` when only they
        were); an applied update has ``train/nonfinite: 0``.
        """
        data = {k: torch.as_tensor(v, device=self.device) for k, v in batch.items()}
        context = None
        if "latent_deter" in data:
            context = self.world_model.rssm.state_from_entry(data.pop("latent_deter")[:, 0],
                                                              data.pop("latent_stoch")[:, 0])
            data = {k: v[:, 1:] for k, v in data.items()}
        else:  # as the official sampler marks it: without a stored start state, begin from zero state and action
            data["is_first"] = data["is_first"].clone()
            data["is_first"][:, 0] = True
        data["action"] = data["action"].float()
        data["reward"] = data["reward"].float()
        self.train()
        buffers = [b.detach().clone() for b in self.buffers() if b.is_floating_point()]
        with autocast(self.device, self.precision):
            wm_losses, post = self.world_model_loss(data, context)
            start = post.map(lambda x: x.detach().reshape(-1, *x.shape[2:]))
            ac_losses, returns, metrics = self.imagination_loss(
                self.world_model, start, data["is_terminal"].reshape(-1))
            bootstrap = returns[:, 0].reshape(data["reward"].shape)
            # Official ``repval_grad: True``: the replay-value loss also shapes the world model's features.
            ac_losses["repval"] = self.actor_critic.replay_value_loss(post.feature(), data, bootstrap)
        losses = {**wm_losses, **ac_losses}
        scaled = [self.scales[k] * v.mean() for k, v in losses.items()]
        total = sum(scaled)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        finite_grads = gradients_finite(self.parameters()).to(total.device, torch.float32)
        # One device-to-host transfer for every metric (each ``.item()`` would be a sync on CUDA).
        names = [*(f"loss/{k}" for k in losses), "loss/total", *(f"train/{k}" for k in metrics)]
        values = torch.stack([*(v.detach().mean().float() for v in losses.values()), total.detach().float(),
                              *(v.detach().float() for v in metrics.values()),
                              *(s.detach().float() for s in scaled), finite_grads]).tolist()
        out = dict(zip(names, values[:len(names)], strict=True))
        faults = nonfinite_terms(list(losses), values[len(names):-1], out["loss/total"], bool(values[-1]))
        out[NONFINITE_FLAG] = float(bool(faults))
        if faults:
            self.optimizer.zero_grad(set_to_none=True)
            for saved, buffer in zip(buffers, (b for b in self.buffers() if b.is_floating_point()), strict=True):
                buffer.copy_(saved)
            out.update({f"{NONFINITE_PREFIX}{term}": 1.0 for term in faults})
            return out, {}
        self.optimizer.step()
        self.actor_critic.update_slow_critic()
        return out, (self.replay_latent(post) if context is not None else {})

    # ---------------------------------------------------------------- persistence
    def checkpoint_state(self) -> dict:
        return {"model": self.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_checkpoint_state(self, state: dict) -> None:
        self.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
