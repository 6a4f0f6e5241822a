"""What an evaluation is: its settings (each default defined here once) and which suites an env is evaluated on.

Light on purpose (no torch, no simulator): the CLI's help, the study's planner and the report read these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from omegaconf import DictConfig

from pvm_mbrl.envs.suites import SuiteSet, load_suites, suite_families

ID_SUITE = "id"
STUDY_TABLE = "returns.csv"  # a study directory's table of every evaluated episode (``TABLE_COLUMNS``)


@dataclass(frozen=True)
class EvaluationSettings:
    """How a checkpoint is evaluated on its env's suites; a study stores these with each evaluated run."""

    episodes: int = 200                   # per suite: the paper's 200
    seed: int = 0                         # picks another fixed set of episode seeds
    greedy: bool = False                  # the policy's mode instead of a sample
    samples: int = 256                    # latents z_t kept per suite
    sample_every: int = 4                 # keep z_t every N-th step
    frames: int = 16                      # observations (+ saliency) kept per suite
    forgetting_images: int | None = None  # digit images of the forgetting measure (None: all 1,797; 0 skips it)

    def __post_init__(self) -> None:
        if not isinstance(self.episodes, int) or self.episodes < 1:
            raise ValueError(f"evaluation episodes must be an integer >= 1, got {self.episodes!r}")
        if self.samples < 0 or self.sample_every < 1 or self.frames < 0:
            raise ValueError(f"samples must be >= 0, sample_every >= 1 and frames >= 0; got {self.samples}, "
                             f"{self.sample_every}, {self.frames}")
        if self.forgetting_images is not None and self.forgetting_images < 0:
            raise ValueError(f"forgetting_images must be >= 0 or None (all), got {self.forgetting_images}")

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def as_dict(self) -> dict:
        return asdict(self)


def family_suites(env_name: str) -> SuiteSet | None:
    """The shift suites of an env's family (with the task's constants where they are per task), or ``None`` for
    a family without a suite file."""
    family, _, task = env_name.partition(":")
    return load_suites(family, task) if family in suite_families() else None


def suite_names(env_name: str) -> list[str]:
    """Every suite an env is evaluated on: its family's suites, or just ``id``."""
    suites = family_suites(env_name)
    return list(suites.suites) if suites else [ID_SUITE]


def model_identity(encoder_cfg: DictConfig) -> tuple[str, str, str]:
    """``(encoder, finetune, model label)``: a CNN trained from scratch has finetune ``scratch``."""
    name, finetune = str(encoder_cfg.name), str(encoder_cfg.get("finetune") or "scratch")
    return name, finetune, name if finetune == "scratch" else f"{name} {finetune}"
