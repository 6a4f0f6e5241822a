"""Actor and critic trained in imagination, with DreamerV3's return normalisation and slow critic."""

from __future__ import annotations

import copy

import torch
from omegaconf import DictConfig
from torch import nn

from pvm_mbrl.dreamer.distributions import BoundedNormal, OneHotCategorical, SymexpTwoHot
from pvm_mbrl.dreamer.returns import PercentileNormalizer, lambda_returns
from pvm_mbrl.dreamer.rssm import RSSMState
from pvm_mbrl.dreamer.world_model import WorldModel
from pvm_mbrl.nets import MLP


class ActorCritic(nn.Module):
    def __init__(self, feature_dim: int, action_dim: int, discrete: bool, model: DictConfig, ac: DictConfig):
        super().__init__()
        self.discrete, self.ac = discrete, ac
        # Official ``policy.outscale: 0.01``: the first policy is centred (mean ~0) with std near its maximum.
        self.actor = MLP(feature_dim, ac.layers, model.units, action_dim if discrete else 2 * action_dim,
                         outscale=ac.policy_outscale)
        self.critic = MLP(feature_dim, ac.layers, model.units, model.bins, outscale=0.0)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.return_norm = PercentileNormalizer(ac.retnorm_rate, ac.retnorm_limit)
        self.discount = 1.0 - 1.0 / ac.horizon

    def policy(self, feat: torch.Tensor) -> OneHotCategorical | BoundedNormal:
        out = self.actor(feat)
        if self.discrete:  # official ``categorical`` policy head: no unimix (only one-hot latents mix)
            return OneHotCategorical(out)
        mean, raw_std = out.chunk(2, -1)
        return BoundedNormal(mean, raw_std, self.ac.min_std, self.ac.max_std)

    def value(self, feat: torch.Tensor, slow: bool = False) -> SymexpTwoHot:
        return SymexpTwoHot((self.slow_critic if slow else self.critic)(feat))

    @torch.no_grad()
    def imagine(self, world_model: WorldModel, start: RSSMState) -> tuple[torch.Tensor, torch.Tensor]:
        """Roll the prior forward ``imag_length`` steps from ``start`` (flat batch) with the policy.

        Runs without gradients: DreamerV3's REINFORCE objective needs none through the dynamics, and it
        guarantees the actor's loss cannot change world-model weights.
        """
        state = start
        feats, actions = [state.feature()], []
        for _ in range(self.ac.imag_length):
            action = self.policy(feats[-1]).sample()
            actions.append(action)
            state = world_model.rssm.img_step(state, action)
            feats.append(state.feature())
        actions.append(self.policy(feats[-1]).sample())
        return torch.stack(feats, 1).float(), torch.stack(actions, 1)

    def imagination_loss(self, world_model: WorldModel, start: RSSMState, start_terminal: torch.Tensor,
                         ) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
        """Policy and value losses over imagined trajectories; also returns the lambda-returns."""
        feat, action = self.imagine(world_model, start)
        value_dist = self.value(feat)  # once: its mean (no gradient) feeds the returns, its logits the loss
        with torch.no_grad():
            reward = world_model.reward(feat).mean()
            cont = world_model.cont(feat).mean()
            cont = torch.cat([1.0 - start_terminal.float().unsqueeze(1), cont[:, 1:]], 1)
            value = value_dist.mean()
            slow_value = self.value(feat, slow=True).mean()
            returns = lambda_returns(reward, cont, value, self.discount, self.ac.lam)
            weight = torch.cumprod(self.discount * cont, 1) / self.discount
            self.return_norm.update(returns)
            advantage = (returns - value[:, :-1]) / self.return_norm.scale()
        policy = self.policy(feat[:, :-1])
        entropy = policy.entropy()
        policy_loss = -(policy.log_prob(action[:, :-1]) * advantage + self.ac.entropy * entropy)
        value_dist = SymexpTwoHot(value_dist.logits[:, :-1])
        value_loss = value_dist.loss(returns) + self.ac.slowreg * value_dist.loss(slow_value[:, :-1])
        losses = {"policy": weight[:, :-1] * policy_loss, "value": weight[:, :-1] * value_loss}
        metrics = {"imag_return": returns.mean(), "policy_entropy": entropy.mean(),
                   "return_scale": self.return_norm.scale()}
        return losses, returns, metrics

    def replay_value_loss(self, feat: torch.Tensor, data: dict[str, torch.Tensor], bootstrap: torch.Tensor,
                          ) -> torch.Tensor:
        """Critic loss on replayed posterior states, bootstrapped from imagination returns (DreamerV3)."""
        value_dist = self.value(feat[:, :-1])
        with torch.no_grad():
            slow_value = self.value(feat, slow=True).mean()
            cont = 1.0 - data["is_terminal"].float()
            returns = lambda_returns(data["reward"].float(), cont, bootstrap, self.discount, self.ac.lam,
                                     is_last=data["is_last"])
            weight = 1.0 - data["is_last"].float()[:, :-1]
        return weight * (value_dist.loss(returns) + self.ac.slowreg * value_dist.loss(slow_value[:, :-1]))

    @torch.no_grad()
    def update_slow_critic(self) -> None:
        torch._foreach_lerp_(list(self.slow_critic.parameters()), list(self.critic.parameters()), self.ac.slow_rate)
