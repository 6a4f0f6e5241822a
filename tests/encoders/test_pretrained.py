import pytest
import skimage.data
import torch
from omegaconf import OmegaConf
from tests.conftest import TINY
from tests.dreamer.test_agent import random_batch

from pvm_mbrl.dreamer.agent import Agent
from pvm_mbrl.encoders.efficientnet import load_efficientnet_lite0
from pvm_mbrl.encoders.mobilenet import load_mobilenet_v2
from pvm_mbrl.encoders.saliency import cls_attention
from pvm_mbrl.training.config import compose_config

PRETRAINED = ["dinov2", "clip", "efficientnet_lite0", "mobilenet_v2"]
MODES = ["frozen", "partial", "full"]


def trainable_names(module):
    return {name for name, p in module.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name", PRETRAINED)
@pytest.mark.parametrize("mode", MODES)
def test_which_parameters_train_and_at_which_rate(encoder_factory, name, mode):
    encoder = encoder_factory(name, finetune=mode)
    everything = {n for n, _ in encoder.named_parameters()}
    trainable = trainable_names(encoder)
    groups = encoder.parameter_groups(4e-5)
    if mode == "frozen":
        assert trainable == set() and groups == []
        return
    assert [g["lr"] for g in groups] == [pytest.approx(4e-6)]  # one tenth of the model's rate
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in encoder.parameters() if p.requires_grad}
    if mode == "full":
        assert trainable == everything
        return
    blocks = len(encoder.blocks)
    expected_k = max(1, -(-blocks // 4))  # a quarter, rounded up
    chosen = {f"blocks.{i}." for i in range(blocks - expected_k, blocks)}
    assert trainable and all(any(n.startswith(c) for c in chosen) for n in trainable)
    assert {n for n in everything if any(n.startswith(c) for c in chosen)} == trainable
    assert not any(n.startswith(("stem.", "head.")) for n in trainable)  # embeddings and final norm frozen


def test_trainable_block_count_is_a_setting(encoder_factory):
    encoder = encoder_factory("dinov2", finetune="partial", trainable_blocks=2)
    assert encoder.trainable_blocks == 2 and trainable_names(encoder) <= {
        n for n, _ in encoder.named_parameters() if n.startswith(("blocks.2.", "blocks.3."))}
    with pytest.raises(ValueError, match="trainable_blocks must be between 1 and 4.*got 9"):
        encoder_factory("dinov2", finetune="partial", trainable_blocks=9)
    with pytest.raises(ValueError, match="unknown finetune mode 'some'"):
        encoder_factory("clip", finetune="some")


def make_agent(encoder_options: dict, image_size: int = 64, seed: int = 0) -> Agent:
    cfg = compose_config([*TINY, f"env.size={image_size}", "encoder.decoder_size=32"])
    cfg.encoder = OmegaConf.create({**OmegaConf.to_container(cfg.encoder), **encoder_options})
    torch.manual_seed(seed)
    return Agent(cfg, {"image_size": image_size, "vectors": {}}, action_dim=2, discrete=False)


def encoder_state(agent):
    return {k: v.clone() for k, v in agent.world_model.encoder.state_dict().items()}


@pytest.mark.parametrize("name", ["dinov2", "efficientnet_lite0"])
def test_updates_leave_frozen_weights_bit_identical_and_partial_changes_only_chosen_blocks(
        name, tiny_dinov2_dir):
    for mode in ("frozen", "partial"):
        agent = make_agent({"name": name, "weights": tiny_dinov2_dir, "finetune": mode, "cache": False,
                            "lr_scale": 10.0})
        before = encoder_state(agent)
        for seed in range(3):
            agent.train_step(random_batch(size=64, action_dim=2, seed=seed))
        after = encoder_state(agent)
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        if mode == "frozen":
            assert changed == set(), changed  # weights and BatchNorm running statistics alike
        else:
            encoder = agent.world_model.encoder
            chosen = tuple(f"blocks.{i}." for i in range(encoder.frozen_blocks, len(encoder.blocks)))
            assert changed and all(k.startswith(chosen) for k in changed), changed


def test_frozen_batchnorm_statistics_do_not_move_in_train_mode(encoder_factory):
    encoder = encoder_factory("efficientnet_lite0", finetune="frozen", cache=False)
    encoder.train()
    stats = {k: v.clone() for k, v in encoder.state_dict().items() if "running" in k}
    encoder(torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8))
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in stats.items())
    assert all(not m.training for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.parametrize("name, load", [("efficientnet_lite0", load_efficientnet_lite0),
                                        ("mobilenet_v2", load_mobilenet_v2)])
def test_building_an_encoder_keeps_the_packaged_batchnorm_statistics(encoder_factory, name, load):
    """Building (its shape probe included) must not move the ImageNet statistics a frozen encoder relies on."""
    def norms(module):
        return [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]

    built, packaged = norms(encoder_factory(name, input_size=128)), norms(load())
    assert len(built) == len(packaged) > 10
    for ours, theirs in zip(built, packaged, strict=True):
        assert torch.equal(ours.running_mean, theirs.running_mean) and torch.equal(ours.running_var, theirs.running_var)


def test_efficientnet_weights_are_real_imagenet_weights(encoder_factory):
    """The packaged ImageNet weights + our preprocessing classify scikit-image's cat photo as a cat."""
    encoder = encoder_factory("efficientnet_lite0", features="pooled")
    cat = torch.as_tensor(skimage.data.chelsea())[None]  # 300 x 451 photo of a cat
    with torch.no_grad():
        logits = load_efficientnet_lite0().eval()._fc(encoder(cat))
    assert logits.argmax(-1).item() in range(281, 286)  # ImageNet's domestic cat classes (tabby ... Egyptian)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "mobilenet_v2"])
def test_imagenet_cnns_take_a_smaller_input_for_a_smaller_map(encoder_factory, name):
    default, small = encoder_factory(name), encoder_factory(name, input_size=128)
    assert default.feature_shape == (49, 1280) and small.feature_shape == (16, 1280)  # 7x7 and 4x4 maps
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        assert small(images).shape == (2, 16, 1280) and small.cache(images).shape == (2, 16, 1280)
    with pytest.raises(ValueError, match="encoder.input_size must be a multiple of 32 .* got 100"):
        encoder_factory(name, input_size=100)
    with pytest.raises(ValueError, match="got 100"):
        compose_config([f"encoder={name}", "encoder.input_size=100"])


@pytest.mark.parametrize("name", PRETRAINED)
@pytest.mark.parametrize("mode", ["frozen", "partial"])
def test_cached_and_uncached_features_agree(encoder_factory, name, mode):
    encoder = encoder_factory(name, finetune=mode)
    images = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        direct = encoder(images)
        cached = encoder.forward_cached(encoder.cache(images))
    assert encoder.cache(images).dtype == torch.float16
    assert torch.allclose(direct, cached, rtol=2e-2, atol=2e-2 * direct.abs().max().item())


def test_an_update_with_caching_gives_the_same_losses(tiny_dinov2_dir):
    options = {"name": "dinov2", "weights": tiny_dinov2_dir, "finetune": "partial"}
    cached_agent = make_agent({**options, "cache": True})
    plain_agent = make_agent({**options, "cache": False})
    batch = random_batch(size=64, action_dim=2)
    cached_batch = {**batch, "encoder_cache": cached_agent.encoder_cache(batch["image"].reshape(-1, 64, 64, 3))
                    .reshape(2, 8, *cached_agent.world_model.encoder.cache_shape)}
    torch.manual_seed(1)
    cached, _ = cached_agent.train_step(cached_batch)
    torch.manual_seed(1)
    plain, _ = plain_agent.train_step(batch)
    assert not isinstance(plain_agent.world_model.feature_norm, torch.nn.Identity)  # PVM tokens: norm + SiLU
    for key in ("loss/rec", "loss/rew", "loss/dyn", "loss/rep", "loss/value"):
        assert cached[key] == pytest.approx(plain[key], rel=1e-2), key


@pytest.mark.parametrize("name", PRETRAINED)
def test_saliency_maps_have_image_shape(encoder_factory, name):
    maps = encoder_factory(name).saliency_map(torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8))
    assert maps.shape == (2, 64, 64) and maps.min() >= 0 and maps.max() == pytest.approx(1.0)


def test_cls_attention_hand_values():
    # one head of width 1: [CLS] query 1 against keys (0, 1, 2) -> softmax(0, 1, 2), patches take the last two
    query = torch.tensor([[[1.0], [0.0], [0.0]]])
    key = torch.tensor([[[0.0], [1.0], [2.0]]])
    expected = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0)[1:]
    assert torch.allclose(cls_attention(query, key, heads=1), expected[None])


def test_missing_weights_say_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    from pvm_mbrl.encoders.dinov2 import DinoV2Encoder

    with pytest.raises(ValueError, match="cannot load weights 'facebook/dinov2-small'.*encoder.weights=DIR"):
        DinoV2Encoder(224, weights="facebook/dinov2-small")


def test_unknown_encoder_lists_known_ones():
    with pytest.raises(ValueError, match="unknown encoder 'vit_huge'; known encoders: clip, cnn, dinov2"):
        compose_config(["encoder.name=vit_huge"])


@pytest.mark.parametrize("name", ["efficientnet_lite0", "mobilenet_v2"])
def test_trainable_depthwise_convolutions_run_in_fp32_on_cpu_and_frozen_ones_as_before(encoder_factory, name):
    """oneDNN's bf16 depthwise backward is slow on CPU: the trainable ones run in fp32 (channels-last) under bf16
    autocast; frozen ones, a frozen encoder's and a partial one's cached prefix, keep autocast's bf16."""
    from pvm_mbrl.encoders.conv_backbone import is_depthwise

    partial, frozen = encoder_factory(name, finetune="partial"), encoder_factory(name, finetune="frozen")
    assert partial.state_dict().keys() == frozen.state_dict().keys()  # checkpoints load either way
    depthwise = [m for m in partial.modules() if is_depthwise(m)]
    trainable = [m for m in depthwise if m.weight.requires_grad]
    untouched = [m for m in depthwise if not m.weight.requires_grad]
    assert trainable and untouched and trainable[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, trainable[0].in_channels, 8, 8)
    with torch.no_grad():
        fp32 = trainable[0](x)  # no autocast: the module's own fp32 result
        with torch.autocast("cpu", torch.bfloat16):
            assert trainable[0](x).dtype == torch.float32 and torch.equal(trainable[0](x), fp32)
            assert untouched[-1](torch.randn(2, untouched[-1].in_channels, 8, 8)).dtype == torch.bfloat16
    assert not any(is_depthwise(m) and m.weight.requires_grad for m in frozen.modules())
