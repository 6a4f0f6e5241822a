"""World model: encoder -> RSSM -> decoder, reward and continue heads, and its losses."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

from pvm_mbrl.dreamer.distributions import Bernoulli, SymexpTwoHot, image_mse, symlog_mse
from pvm_mbrl.dreamer.rssm import RSSM, RSSMState
from pvm_mbrl.dreamer.transforms import symlog
from pvm_mbrl.encoders.base import ImageEncoder
from pvm_mbrl.encoders.cnn import CNNDecoder
from pvm_mbrl.nets import MLP, NORM_EPS, RMSNorm


class WorldModel(nn.Module):
    """Learns the environment from replayed sequences of images (and optional vectors).

    ``vector_dims`` names 1-D observation keys (e.g. proprioception); they are symlog-encoded by an MLP,
    concatenated with the image features, and reconstructed with a symlog MSE loss.
    """

    def __init__(self, encoder: ImageEncoder, action_dim: int, model: DictConfig,
                 decoder_size: int, vector_dims: dict[str, int] | None = None):
        super().__init__()
        self.encoder = encoder
        self.vector_dims = dict(vector_dims or {})
        vector_total = sum(self.vector_dims.values())
        self.vector_encoder = MLP(vector_total, 3, model.units) if vector_total else None
        # Pre-trained features enter the posterior through norm + SiLU, as the paper's code does; the CNN's directly.
        self.feature_norm = (nn.Sequential(RMSNorm(encoder.feature_dim, eps=NORM_EPS), nn.SiLU())
                             if encoder.features_need_norm else nn.Identity())
        embed_dim = encoder.feature_dim + (model.units if vector_total else 0)
        self.rssm = RSSM(embed_dim, action_dim, model.deter, model.hidden, model.stoch, model.classes,
                         model.blocks, model.unimix, model.free_nats)
        feat = self.rssm.feature_dim
        self.image_decoder = CNNDecoder(model.deter, model.stoch * model.classes, model.units, decoder_size,
                                        model.depth, model.get("cnn_downsample", "pool"))
        self.vector_decoder = MLP(feat, 3, model.units, vector_total) if vector_total else None
        self.reward_head = MLP(feat, 1, model.units, model.bins, outscale=0.0)
        self.continue_head = MLP(feat, 1, model.units, 1)
        self.decoder_size = decoder_size

    def embed(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Embeddings ``[..., embed_dim]`` from images, or from stored encoder caches when present."""
        if "encoder_cache" in obs:
            cache = obs["encoder_cache"]
            lead = cache.shape[: cache.dim() - len(self.encoder.cache_shape)]
            features = self.encoder.forward_cached(cache.reshape(-1, *self.encoder.cache_shape))
        else:
            image = obs["image"]
            lead = image.shape[:-3]
            features = self.encoder(image.reshape(-1, *image.shape[-3:]))
        x = self.feature_norm(features.flatten(1))
        if self.vector_encoder is not None:
            vec = torch.cat([symlog(obs[k].reshape(-1, d).float()) for k, d in self.vector_dims.items()], -1)
            x = torch.cat([x, self.vector_encoder(vec)], -1)
        return x.reshape(*lead, -1)

    def resize_to_decoder(self, image: torch.Tensor) -> torch.Tensor:
        """Images ``[..., H, W, 3]`` area-resized to the decoder's resolution (float, same value range)."""
        x = image.float()
        if image.shape[-2] != self.decoder_size:
            lead = x.shape[:-3]
            x = nn.functional.interpolate(x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2),
                                          size=(self.decoder_size,) * 2, mode="area")
            x = x.permute(0, 2, 3, 1).reshape(*lead, self.decoder_size, self.decoder_size, 3)
        return x

    def image_target(self, image: torch.Tensor) -> torch.Tensor:
        """Observation at the decoder's resolution, as floats in [0, 1]."""
        return self.resize_to_decoder(image) / 255.0

    def reward(self, feat: torch.Tensor) -> SymexpTwoHot:
        return SymexpTwoHot(self.reward_head(feat))

    def cont(self, feat: torch.Tensor) -> Bernoulli:
        return Bernoulli(self.continue_head(feat).squeeze(-1))

    def loss(self, data: dict[str, torch.Tensor], state: RSSMState | None = None,
             ) -> tuple[dict[str, torch.Tensor], RSSMState]:
        """Per-step world-model losses ``[batch, time]`` and the posterior states."""
        embed = self.embed(data)
        post, prior_logits = self.rssm.observe(embed, data["action"], data["is_first"], state)
        feat = post.feature()
        losses = {}
        losses["dyn"], losses["rep"] = self.rssm.kl_losses(post, prior_logits)
        losses["rec"] = image_mse(self.image_decoder(feat), self.image_target(data["image"]))
        if self.vector_decoder is not None:
            target = torch.cat([data[k].float().reshape(*feat.shape[:2], d) for k, d in self.vector_dims.items()],
                               -1)
            losses["vec"] = symlog_mse(self.vector_decoder(feat), target)
        losses["rew"] = self.reward(feat).loss(data["reward"])
        losses["con"] = self.cont(feat).loss(1.0 - data["is_terminal"].float())
        return losses, post

