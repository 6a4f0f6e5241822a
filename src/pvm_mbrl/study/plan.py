"""A study preset expanded into its runs.

A preset (``conf/study/<name>.yaml``, or any YAML file a user writes) has a ``grid`` of axes (``env``,
``encoder``, ``finetune``, ``seed`` or any training setting), ``overrides`` every run shares, ``rules`` that add
overrides to the runs matching a condition (the paper's CNN sees 128² images, its PVMs 224²) or leave them out
(``skip: true``), and the settings of
evaluation, report and compute estimate. ``base: <preset>`` starts from another preset. Command-line overrides
edit the grid the Hydra way: ``seed=0,1,2`` makes an axis, ``seed=1`` pins it, ``steps=5000`` changes every run,
``evaluation.episodes=10`` changes a preset section.
An encoder without fine-tuning modes (the CNN, trained from scratch) ignores the ``finetune`` axis, so
``encoder=cnn,dinov2,clip finetune=frozen,partial,full`` is the paper's seven encoder configurations.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from pvm_mbrl.evaluation.settings import EvaluationSettings
from pvm_mbrl.training.config import CONF_DIR, compose_config

PRESET_DIR = CONF_DIR / "study"
PRESET_KEYS = {"base", "description", "conclusive", "grid", "overrides", "rules", "evaluation", "report",
               "estimate", "launcher"}
SECTION_KEYS = ("evaluation", "report", "estimate")  # preset sections a command line may edit
AXIS_KEYS = {"finetune": "encoder.finetune"}  # study shorthand -> training setting
NAME_FIRST = ("env", "encoder", "finetune")  # run names read env, model, ..., seed


def is_launcher_override(override: str) -> bool:
    """Overrides for Hydra itself (``hydra/launcher=ray``, ``hydra.launcher.n_jobs=2``), not for the runs."""
    return override.startswith(("hydra/", "hydra.", "+hydra", "~hydra"))


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


@dataclass(frozen=True)
class RunSpec:
    """One run of a study: its name (the run directory's), its grid values and its ``pvm-mbrl train`` overrides."""

    name: str
    axes: dict[str, str]
    overrides: tuple[str, ...]


@dataclass
class StudyPlan:
    preset: str
    description: str
    conclusive: bool
    runs: list[RunSpec]
    overrides: list[str] = field(default_factory=list)  # the command line's, on top of the preset
    evaluation: dict = field(default_factory=lambda: EvaluationSettings().as_dict())
    report: dict = field(default_factory=dict)
    estimate: dict = field(default_factory=dict)
    launcher: list[str] = field(default_factory=list)  # Hydra launcher overrides used when the command line has none

    def run(self, name: str) -> RunSpec:
        for spec in self.runs:
            if spec.name == name:
                return spec
        raise KeyError(f"run {name!r} is not in study {self.preset!r} (its runs: "
                       f"{', '.join(s.name for s in self.runs)})")

    def same_study(self, other: StudyPlan) -> bool:
        """The same runs, configured and evaluated alike; description, report, estimate and launcher may differ (a
        newer version of the preset may state them differently without changing any result)."""
        return (self.preset, self.runs, self.overrides, self.evaluation) == \
            (other.preset, other.runs, other.overrides, other.evaluation)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["runs"] = [{"name": s.name, "axes": s.axes, "overrides": list(s.overrides)} for s in self.runs]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> StudyPlan:
        runs = [RunSpec(r["name"], dict(r["axes"]), tuple(r["overrides"])) for r in data["runs"]]
        return cls(**{**data, "runs": runs})


def _preset_path(preset: str) -> Path:
    """The YAML file of a preset name or a study file path; ValueError naming the choices when there is none."""
    path = Path(preset)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ValueError(f"study file {preset} does not exist")
        return path
    path = PRESET_DIR / f"{preset}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown study preset {preset!r}; choose one of: {', '.join(preset_names())}, "
                         f"or give the path of a study YAML file")
    return path


def preset_name(preset: str) -> str:
    """``quick`` for ``quick``, ``mine`` for ``path/to/mine.yaml`` (the default study directory's name)."""
    return _preset_path(preset).stem


def load_preset(preset: str) -> tuple[str, DictConfig]:
    """``(name, config)`` of a preset name or a YAML file path, with its ``base`` chain merged in."""
    path = _preset_path(preset)
    name = path.stem
    cfg = OmegaConf.load(path)
    unknown = set(cfg) - PRESET_KEYS
    if unknown:
        raise ValueError(f"study {path}: unknown key(s) {', '.join(sorted(unknown))}; accepted: "
                         f"{', '.join(sorted(PRESET_KEYS))}")
    if cfg.get("base"):
        _, base = load_preset(str(cfg.base))
        cfg = OmegaConf.merge(base, {k: v for k, v in cfg.items() if k != "base"})
    return name, cfg


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-")


def run_name(axes: dict[str, str]) -> str:
    """``tabletop__dinov2-frozen__seed0``: env, model, other axes, seed, each a safe path part."""
    model = "-".join(_slug(axes[k]) for k in ("encoder", "finetune") if k in axes)
    parts = [_slug(axes["env"])] if "env" in axes else []
    parts += [model] if model else []
    parts += [f"{_slug(k)}-{_slug(v)}" for k, v in axes.items() if k not in (*NAME_FIRST, "seed")]
    parts += [f"seed{_slug(axes['seed'])}"] if "seed" in axes else []
    return "__".join(parts) or "run"


def _encoder_has_finetune(encoder: str) -> bool:
    path = CONF_DIR / "encoder" / f"{encoder}.yaml"
    return path.is_file() and "finetune" in OmegaConf.load(path)


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The preset with command-line overrides applied: sweeps (``a,b``) set axes, single values pin an axis or
    change every run."""
    cfg = OmegaConf.create(OmegaConf.to_container(cfg))
    grid = dict(cfg.get("grid") or {})
    shared = list(cfg.get("overrides") or [])
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as error:
        raise ValueError(f"bad study override: {error}") from error
    for override, text in zip(parsed, overrides, strict=True):
        key = override.get_key_element()
        if key in ("run_dir", "+run_dir"):
            raise ValueError("run_dir cannot be set in a study: each run's directory is STUDY_DIR/<run name>")
        if key.split(".")[0] in SECTION_KEYS:  # evaluation.episodes=10, report.bootstrap=1000
            if override.is_sweep_override():
                raise ValueError(f"{text}: {key.split('.')[0]} settings take one value, not a sweep")
            OmegaConf.update(cfg, key, override.value(), force_add=True)
        elif override.is_sweep_override():
            grid[key] = list(override.sweep_string_iterator())
        elif key in grid:
            grid[key] = [override.get_value_element_as_str()]
        else:
            shared.append(text)
    cfg.grid, cfg.overrides = grid, shared
    return cfg


def _matches(when: dict, axes: dict[str, str]) -> bool:
    def accepted(value) -> list[str]:
        return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]

    return all(key in axes and axes[key] in accepted(value) for key, value in when.items())


def expand_grid(cfg: DictConfig) -> list[RunSpec]:
    """Every run of the grid, in grid order, without duplicates (the CNN has no ``finetune``)."""
    grid = {str(k): [str(v) for v in values] for k, values in (cfg.get("grid") or {}).items()}
    for key, values in grid.items():
        if not values:
            raise ValueError(f"study grid axis {key!r} has no values")
    rules = _section(cfg, "rules") or []
    for rule in rules:
        if "when" not in rule or len(set(rule) & {"set", "skip"}) != 1 or not set(rule) <= {"when", "set", "skip"}:
            raise ValueError(f"study rule {rule} must have the key 'when' and one of 'set' (overrides to add) or "
                             "'skip: true' (leave those runs out)")
    shared = [str(o) for o in cfg.get("overrides") or []]
    shared_encoder = next((o.split("=", 1)[1] for o in reversed(shared) if o.startswith("encoder=")), "cnn")
    runs: dict[str, RunSpec] = {}
    for values in itertools.product(*grid.values()):
        axes = dict(zip(grid, values, strict=True))
        encoder = axes.get("encoder", shared_encoder)
        if "finetune" in axes and not _encoder_has_finetune(encoder):
            del axes["finetune"]
        overrides = shared + [f"{AXIS_KEYS.get(k, k)}={v}" for k, v in axes.items()]
        matching = [rule for rule in rules if _matches(rule["when"], axes)]
        if any(rule.get("skip") for rule in matching):
            continue
        for rule in matching:
            overrides += [str(o) for o in rule.get("set") or []]
        name = run_name(axes)
        runs.setdefault(name, RunSpec(name, axes, tuple(overrides)))
    return list(runs.values())


def run_config(study_dir: Path, spec: RunSpec, validate: bool = True) -> DictConfig:
    """The run's composed (and validated) training config; errors name the run."""
    try:
        return compose_config([*spec.overrides, f"run_dir={Path(study_dir).resolve() / spec.name}"], validate)
    except ValueError as error:
        raise ValueError(f"study run {spec.name}: {error}") from error


def run_configs(study_dir: Path, plan: StudyPlan, validate: bool = True) -> dict[str, DictConfig]:
    """Every run's composed (and validated) config, by name (composed once per command: Hydra's global state is
    not for threads, so a progress thread only reads these)."""
    return {spec.name: run_config(study_dir, spec, validate) for spec in plan.runs}


def _check_keys(section: str, given: dict, accepted) -> None:
    unknown = set(given) - set(accepted)
    if unknown:
        raise ValueError(f"study {section}: unknown key(s) {', '.join(sorted(unknown))}; accepted: "
                         f"{', '.join(accepted)}")


def make_plan(preset: str, overrides: list[str], study_dir: Path) -> tuple[StudyPlan, dict[str, DictConfig]]:
    """The study's plan and every run's config, composed and checked here, before anything starts."""
    from pvm_mbrl.analysis.report_options import ReportOptions

    name, cfg = load_preset(preset)
    cfg = apply_overrides(cfg, overrides)
    evaluation = {**EvaluationSettings().as_dict(), **_section(cfg, "evaluation")}
    _check_keys("evaluation", evaluation, EvaluationSettings.keys())
    EvaluationSettings(**evaluation)  # checks the values, naming the bad one
    report = _section(cfg, "report")
    _check_keys("report", report, [f.name for f in fields(ReportOptions) if f.name != "notes"])
    plan = StudyPlan(name, str(cfg.get("description") or ""), bool(cfg.get("conclusive", True)), expand_grid(cfg),
                     list(overrides), evaluation, report, _section(cfg, "estimate"), _launcher(cfg))
    return plan, run_configs(study_dir, plan)


def _launcher(cfg: DictConfig) -> list[str]:
    """The preset's default launcher: Hydra overrides such as ``hydra/launcher=joblib``."""
    launcher = [str(o) for o in cfg.get("launcher") or []]
    bad = [o for o in launcher if not is_launcher_override(o)]
    if bad:
        raise ValueError(f"study launcher: {', '.join(bad)} is not a Hydra launcher override; accepted: overrides "
                         "starting with hydra/ or hydra. (e.g. hydra/launcher=joblib, hydra.launcher.n_jobs=2)")
    return launcher


def _section(cfg: DictConfig, key: str) -> dict | list:
    """A preset section as plain Python (``{}`` when absent)."""
    value = cfg.get(key)
    return OmegaConf.to_container(value) if value is not None else {}
