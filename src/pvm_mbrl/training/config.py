"""Composing configs from presets with Hydra overrides, and checking them before anything starts."""

from __future__ import annotations

import difflib
import math
import re

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from pvm_mbrl.resources import CONF_DIR  # study/ imports it from here too

# Settings that may change when a run is resumed; anything else must match the saved config.
COMPILE_MODES = ("off", "default", "reduce-overhead")  # torch.compile modes the agent's losses may run in
RESUMABLE_KEYS = {"steps", "eval_every", "eval_episodes", "log_every", "checkpoint_every", "threads", "device",
                  "time_limit_minutes", "divergence_patience", "compile"}

# ``${slug:${env.name}}`` turns a name like dmc:cartpole-balance into a safe path part.
if not OmegaConf.has_resolver("slug"):
    OmegaConf.register_new_resolver("slug", lambda text: re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)))


def group_options(group: str) -> list[str]:
    """Preset names of a config group (``model``, ``env``, ``encoder``)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def compose_config(overrides: list[str] | tuple[str, ...] = (), validate: bool = True) -> DictConfig:
    """The training config with Hydra-style ``key=value`` overrides applied, then validated (validation loads the
    encoder and env registries, i.e. torch: ``validate=False`` for configs checked before, as ``study status``)."""
    for override in overrides:
        key, sep, value = override.partition("=")
        if key.startswith(("+", "~")):  # Hydra's add/delete syntax would silently add a setting nothing reads
            raise ValueError(f"override {override!r}: settings cannot be added or deleted; "
                             f"{unknown_key_hint(key.lstrip('+~'))}")
        if sep and key in ("model", "env", "encoder") and value not in group_options(key):
            raise ValueError(f"unknown {key} preset {value!r}; choose one of: {', '.join(group_options(key))}")
    cfg = _compose(list(overrides), unknown_ok=False)
    if validate:
        validate_config(cfg)
    return cfg


def sequence_length(cfg: DictConfig) -> int:
    """Steps a replayed sequence holds: the batch length plus the replay-context step before it."""
    return int(cfg.batch_length) + int(cfg.replay_context)


def _compose(overrides: list[str], unknown_ok: bool) -> DictConfig:
    # Inside a Hydra job (a study's) Hydra's global state is the launcher's: set it aside while composing.
    outer = GlobalHydra.instance().hydra
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=overrides)
    except HydraException as error:
        if unknown_ok:
            raise
        unknown = re.search(r"Could not override '([^']+)'", str(error))
        if unknown:  # Hydra's own hint (``+key=...``) would add a setting nothing reads
            raise ValueError(f"unknown setting {unknown.group(1)!r}; {unknown_key_hint(unknown.group(1))}") from None
        raise ValueError(f"bad config override: {error}") from error
    finally:
        GlobalHydra.instance().hydra = outer


def setting_keys() -> list[str]:
    """Every dotted key of the default training config (what ``key=value`` may set)."""
    def walk(node: object, prefix: str) -> list[str]:
        if isinstance(node, dict):
            return [k for key, value in node.items() for k in walk(value, f"{prefix}{key}.")]
        return [prefix[:-1]]

    return walk(OmegaConf.to_container(_compose([], unknown_ok=True), resolve=False), "")


def unknown_key_hint(key: str) -> str:
    """The nearest setting names to a misspelt key, or where the settings are listed."""
    close = difflib.get_close_matches(key, setting_keys(), n=3, cutoff=0.6)
    listing = "`pvm-mbrl train --print-config` lists every setting"
    return f"did you mean {' or '.join(close)}? ({listing})" if close else listing


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def validate_config(cfg: DictConfig) -> None:
    """Fail early, naming the bad value and what is accepted."""
    from pvm_mbrl.encoders.registry import encoder_class
    from pvm_mbrl.envs.registry import parse_env_name

    for key in ("steps", "batch_size", "batch_length", "replay_capacity", "eval_episodes", "log_every",
                "checkpoint_every", "eval_every", "divergence_patience"):
        _require(isinstance(cfg[key], int) and cfg[key] > 0, f"{key} must be a positive integer, got {cfg[key]!r}")
    for key in ("train_ratio", "prefill", "threads", "time_limit_minutes"):
        _require(isinstance(cfg[key], int | float) and cfg[key] >= 0,
                 f"{key} must be a number >= 0, got {cfg[key]!r}")
    _require(math.isfinite(cfg.train_ratio) and cfg.train_ratio > 0,
             f"train_ratio must be a finite number > 0 (replayed steps per agent step), got {cfg.train_ratio!r}")
    _require(cfg.batch_length >= 2, f"batch_length must be >= 2 (returns need a next step), got {cfg.batch_length!r}")
    _require(cfg.prefill < cfg.steps, f"prefill ({cfg.prefill}) must be below steps ({cfg.steps}): the run would "
             "never train")
    optim_ranges = {"lr": (lambda v: 0 < v < 1, "in (0, 1)"), "eps": (lambda v: 0 <= v < 1, "in [0, 1)"),
                    "agc": (lambda v: 0 <= v < math.inf, ">= 0 and finite")}
    for key, (accepted, description) in optim_ranges.items():
        value = cfg.optim[key]
        _require(isinstance(value, int | float) and accepted(value),
                 f"optim.{key} must be a number {description}, got {value!r}")
    _require(isinstance(cfg.optim.warmup, int) and cfg.optim.warmup >= 0,
             f"optim.warmup must be an integer >= 0, got {cfg.optim.warmup!r}")
    _require(cfg.replay_context in (0, 1), f"replay_context must be 0 or 1, got {cfg.replay_context!r}")
    _require(cfg.model.classes <= 256, f"model.classes must be <= 256 (replay stores latents as bytes), "
             f"got {cfg.model.classes!r}")
    _require(cfg.replay_storage in ("memory", "disk"),
             f"replay_storage must be 'memory' or 'disk', got {cfg.replay_storage!r}")
    _require(cfg.compile in COMPILE_MODES, f"compile must be one of {', '.join(COMPILE_MODES)}, got {cfg.compile!r}")
    _require(cfg.precision in ("auto", "bf16", "fp32"),
             f"precision must be 'auto', 'bf16' or 'fp32', got {cfg.precision!r}")
    _require(cfg.device == "auto" or str(cfg.device).split(":")[0] in ("cpu", "cuda"),
             f"device must be auto, cpu, cuda or cuda:N, got {cfg.device!r}")
    for key in ("deter", "hidden", "stoch", "classes", "depth", "units", "blocks", "bins"):
        value = cfg.model[key]
        _require(isinstance(value, int) and value > 0, f"model.{key} must be a positive integer, got {value!r}")
    _require(cfg.model.deter % cfg.model.blocks == 0,
             f"model.deter ({cfg.model.deter}) must be divisible by model.blocks ({cfg.model.blocks})")
    _require(isinstance(cfg.env.size, int) and cfg.env.size > 0,
             f"env.size must be a positive integer, got {cfg.env.size!r}")
    _require(cfg.env.num_envs >= 1, f"env.num_envs must be >= 1, got {cfg.env.num_envs!r}")
    _require(cfg.env.action_repeat >= 1, f"env.action_repeat must be >= 1, got {cfg.env.action_repeat!r}")
    parse_env_name(cfg.env.name)
    encoder_class(cfg.encoder.name).check_image_size(cfg.env.size)
    if "finetune" in cfg.encoder:
        from pvm_mbrl.encoders.pretrained import FINETUNE_MODES

        _require(cfg.encoder.finetune in FINETUNE_MODES,
                 f"encoder.finetune must be one of {', '.join(FINETUNE_MODES)}, got {cfg.encoder.finetune!r}")
    if cfg.encoder.get("input_size") is not None:
        from pvm_mbrl.encoders.conv_backbone import check_input_size

        check_input_size(cfg.encoder.input_size)
    if cfg.encoder.get("decoder_size"):
        from pvm_mbrl.encoders.cnn import cnn_stages

        cnn_stages(cfg.encoder.decoder_size)
    unknown = set(cfg.loss_scales) - {"rec", "vec", "rew", "con", "dyn", "rep", "policy", "value", "repval"}
    _require(not unknown, f"unknown loss_scales {sorted(unknown)}")


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def config_differences(saved: dict, current: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted key, saved value, current value) for every leaf that differs."""
    diffs = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append((f"{prefix}{key}", a, b))
    return diffs


def resume_conflicts(saved: dict, current: dict) -> list[str]:
    """The config changes that forbid resuming a run (``key: old -> new``); a moved run directory is not one."""
    def moved(old: object, new: object) -> bool:  # the run dir itself, or a path derived from it
        return old == saved.get("run_dir") and new == current.get("run_dir")

    return [f"{key}: {a!r} -> {b!r}" for key, a, b in config_differences(saved, current)
            if key.split(".")[0] not in RESUMABLE_KEYS and not moved(a, b)]
