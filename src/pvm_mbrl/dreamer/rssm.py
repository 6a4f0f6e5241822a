"""Recurrent state-space model: block-diagonal GRU + 32 categorical latents (DreamerV3, 2024-25)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pvm_mbrl.dreamer.distributions import OneHotCategorical, free_nats_kl
from pvm_mbrl.nets import MLP, NORM_EPS, BlockLinear, NormAct, RMSNorm, init_fan_in_, linear


@dataclass
class RSSMState:
    """Deterministic GRU state, one-hot latent sample and the latent's log-probs."""

    deter: torch.Tensor  # [..., deter]
    stoch: torch.Tensor  # [..., stoch, classes]
    logits: torch.Tensor  # [..., stoch, classes]

    def feature(self) -> torch.Tensor:
        """The model state the heads read: deterministic state and flattened latent sample."""
        return torch.cat([self.deter, self.stoch.flatten(-2)], -1)

    def map(self, fn) -> RSSMState:
        return RSSMState(fn(self.deter), fn(self.stoch), fn(self.logits))

    @staticmethod
    def stack(states: list[RSSMState], dim: int) -> RSSMState:
        return RSSMState(*(torch.stack([getattr(s, k) for s in states], dim) for k in ("deter", "stoch", "logits")))

class RSSM(nn.Module):
    def __init__(self, embed_dim: int, action_dim: int, deter: int, hidden: int, stoch: int = 32,
                 classes: int = 32, blocks: int = 8, unimix: float = 0.01, free_nats: float = 1.0):
        super().__init__()
        if deter % blocks:
            raise ValueError(f"deter={deter} must be divisible by blocks={blocks}")
        self.deter_dim, self.stoch_dim, self.classes, self.blocks = deter, stoch, classes, blocks
        self.unimix, self.free_nats = unimix, free_nats
        self.feature_dim = deter + stoch * classes
        # Dynamics core: project deter, latent and action separately, then a block GRU over the deter.
        self.in_deter = NormAct(deter, hidden)
        self.in_stoch = NormAct(stoch * classes, hidden)
        self.in_action = NormAct(action_dim, hidden)
        group_in = deter // blocks + 3 * hidden
        self.hidden_layer = nn.Sequential(BlockLinear(group_in * blocks, deter, blocks),
                                          RMSNorm(deter, eps=NORM_EPS), nn.SiLU())
        self.gru = BlockLinear(deter, 3 * deter, blocks)
        self.prior_net = MLP(deter, 2, hidden, stoch * classes)
        # The posterior's first layer reads concat(deter, embed); split into two linear maps (one carries the
        # bias) so the (large, e.g. 98k-dim ViT tokens) embed part runs once over all time steps, not in the loop.
        self.post_deter = linear(deter, hidden)
        self.post_embed = linear(embed_dim, hidden, bias=False)
        for layer in (self.post_deter, self.post_embed):
            init_fan_in_(layer.weight, deter + embed_dim)
        self.post_out = nn.Sequential(RMSNorm(hidden, eps=NORM_EPS), nn.SiLU(), linear(hidden, stoch * classes))

    def initial(self, batch: int, device: torch.device | str) -> RSSMState:
        deter = torch.zeros(batch, self.deter_dim, device=device)
        stoch = torch.zeros(batch, self.stoch_dim, self.classes, device=device)
        return RSSMState(deter, stoch, torch.zeros_like(stoch))

    def replay_entry(self, state: RSSMState) -> dict[str, torch.Tensor]:
        """What replay stores of a posterior state (DreamerV3's ``replay_context``): deter, and the stochastic
        latent as class indices (one byte per latent instead of ``classes`` floats)."""
        return {"latent_deter": state.deter.to(torch.float16), "latent_stoch": state.stoch.argmax(-1).to(torch.uint8)}

    def state_from_entry(self, deter: torch.Tensor, stoch_index: torch.Tensor) -> RSSMState:
        """The state a stored :meth:`replay_entry` stands for (its logits are not stored: zeros)."""
        stoch = nn.functional.one_hot(stoch_index.long(), self.classes).float()
        return RSSMState(deter.float(), stoch, torch.zeros_like(stoch))

    def _dist(self, logits: torch.Tensor) -> OneHotCategorical:
        return OneHotCategorical(logits.reshape(*logits.shape[:-1], self.stoch_dim, self.classes), self.unimix)

    def _project_action(self, action: torch.Tensor) -> torch.Tensor:
        """The core's action input: actions scaled into [-1, 1] (DreamerV3), then linear + norm + SiLU."""
        return self.in_action(action / torch.clamp(action.abs(), min=1.0).detach())

    def _core(self, deter: torch.Tensor, stoch: torch.Tensor, action_proj: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.in_deter(deter), self.in_stoch(stoch.flatten(-2)), action_proj], -1)
        g = self.blocks
        # Every block sees its slice of the deter plus the shared inputs.
        x = torch.cat([deter.reshape(-1, g, deter.shape[-1] // g).to(x.dtype),
                       x.unsqueeze(-2).expand(-1, g, -1)], -1).flatten(-2)
        x = self.gru(self.hidden_layer(x))
        reset, cand, update = (t.flatten(-2) for t in x.reshape(-1, g, 3, deter.shape[-1] // g).unbind(-2))
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1.0)
        return (update * cand + (1 - update) * deter).float()

    def prior_logits(self, deter: torch.Tensor) -> torch.Tensor:
        """The prior's normalised log-probs ``[..., stoch, classes]`` for deterministic states."""
        return self._dist(self.prior_net(deter)).logits

    def img_step(self, state: RSSMState, action: torch.Tensor) -> RSSMState:
        """One step of the prior: predict the next state from the current one and an action."""
        deter = self._core(state.deter, state.stoch, self._project_action(action))
        dist = self._dist(self.prior_net(deter))
        return RSSMState(deter, dist.sample(), dist.logits)

    def obs_step(self, state: RSSMState, action: torch.Tensor, embed: torch.Tensor,
                 is_first: torch.Tensor) -> RSSMState:
        """The posterior after one step (acting); ``is_first`` resets state and action to zero first."""
        keep = (1.0 - is_first.float()).unsqueeze(-1)
        return self._obs_step(state, self._project_action(action * keep), self.post_embed(embed), keep)

    def _obs_step(self, state: RSSMState, action_proj: torch.Tensor, embed_proj: torch.Tensor,
                  keep: torch.Tensor) -> RSSMState:
        deter = self._core(state.deter * keep, state.stoch * keep.unsqueeze(-1), action_proj)
        post = self._dist(self.post_out(self.post_deter(deter) + embed_proj))
        return RSSMState(deter, post.sample(), post.logits)

    def observe(self, embed: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor,
                state: RSSMState | None = None) -> tuple[RSSMState, torch.Tensor]:
        """Posterior states and prior log-probs for ``[batch, time]`` inputs; ``action[:, t]`` led to step t.

        Only the recurrence runs step by step: the action and embedding projections run on all steps before
        the loop, and the prior (needed only for the KL) on all deterministic states after it.
        """
        state = state or self.initial(embed.shape[0], embed.device)
        keep = (1.0 - is_first.float()).unsqueeze(-1)
        action_proj = self._project_action(action * keep)
        embed_proj = self.post_embed(embed)
        posts = []
        for t in range(embed.shape[1]):
            state = self._obs_step(state, action_proj[:, t], embed_proj[:, t], keep[:, t])
            posts.append(state)
        post = RSSMState.stack(posts, 1)
        return post, self.prior_logits(post.deter)

    def kl_losses(self, post: RSSMState, prior_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dynamics loss KL(sg(post) || prior) and representation loss KL(post || sg(prior)), free nats."""
        dyn = free_nats_kl(post.logits.detach(), prior_logits, self.free_nats)
        rep = free_nats_kl(post.logits, prior_logits.detach(), self.free_nats)
        return dyn, rep
