"""Study presets expanded into runs: the paper's grid, user grids, rules, names, estimates and bad input."""

from collections import Counter
from pathlib import Path

import pytest

from pvm_mbrl.cli import main
from pvm_mbrl.study.estimate import encoder_images, estimate_run, gradient_updates, queue_wall_hours
from pvm_mbrl.study.launch import hours_left, launch_order, parallel_jobs, runs_sharing_wall_time, work_left
from pvm_mbrl.study.plan import make_plan, preset_names, run_config, run_name
from pvm_mbrl.study.state import RunState, RunStatus

STUDY = Path("/tmp/pvm-mbrl-plan-test")  # plans compose configs only; nothing is written there


def model(spec) -> str:
    return "-".join(spec.axes[k] for k in ("encoder", "finetune") if k in spec.axes)


def test_presets_are_listed():
    assert {"quick", "paper", "offline-paper"} <= set(preset_names())


def test_paper_grid_is_42_runs_of_7_encoder_configurations():
    plan, _ = make_plan("paper", [], STUDY)
    assert len(plan.runs) == 42 and len({s.name for s in plan.runs}) == 42
    assert sorted(Counter(model(s) for s in plan.runs)) == [
        "clip-frozen", "clip-full", "clip-partial", "cnn", "dinov2-frozen", "dinov2-full", "dinov2-partial"]
    assert set(Counter(model(s) for s in plan.runs).values()) == {6}  # 2 envs x 3 seeds each
    by_name = {s.name: s for s in plan.runs}
    cnn = run_config(STUDY, by_name["tabletop__cnn__seed2"])
    assert (cnn.steps, cnn.env.size, cnn.seed, cnn.model.deter, cnn.train_ratio) == (1_000_000, 128, 2, 8192, 512)
    dino = run_config(STUDY, by_name["driving__dinov2-partial__seed0"])
    assert (dino.steps, dino.env.size, dino.encoder.finetune) == (400_000, 224, "partial")
    assert dino.run_dir == str(STUDY / "driving__dinov2-partial__seed0")
    assert plan.evaluation["episodes"] == 200


def test_offline_paper_swaps_in_encoders_with_offline_weights():
    plan, _ = make_plan("offline-paper", [], STUDY)
    assert len(plan.runs) == 42
    assert {s.axes["encoder"] for s in plan.runs} == {"cnn", "efficientnet_lite0", "mobilenet_v2"}
    effnet = run_config(STUDY, plan.run("tabletop__efficientnet_lite0-full__seed1"))
    assert (effnet.steps, effnet.env.size) == (1_000_000, 224)


def test_command_line_grid_overrides():
    plan, _ = make_plan("quick", ["encoder=cnn,mobilenet_v2", "finetune=frozen,partial", "seed=0,1,2", "steps=1234",
                               "evaluation.episodes=3"], STUDY)
    # cnn has no finetune modes: 1 + 2 encoder configurations, x 3 seeds
    assert len(plan.runs) == 9
    assert {model(s) for s in plan.runs} == {"cnn", "mobilenet_v2-frozen", "mobilenet_v2-partial"}
    assert all(run_config(STUDY, s).steps == 1234 for s in plan.runs[:2])
    assert plan.evaluation["episodes"] == 3
    pinned, _ = make_plan("quick", ["seed=4", "encoder=cnn"], STUDY)
    assert [s.name for s in pinned.runs] == ["dmc__cnn__seed4"]


def test_run_names():
    assert run_name({"env": "tabletop", "encoder": "dinov2", "finetune": "frozen", "seed": "0"}) == \
        "tabletop__dinov2-frozen__seed0"
    assert run_name({"seed": "1", "encoder": "cnn", "train_ratio": "32", "env.name": "dmc:walker-walk"}) == \
        "cnn__train_ratio-32__env.name-dmc-walker-walk__seed1"


@pytest.mark.parametrize(("preset", "overrides", "message"), [
    ("nope", [], "unknown study preset 'nope'; choose one of: "),
    ("missing.yaml", [], "study file missing.yaml does not exist"),
    ("quick", ["run_dir=/x"], "run_dir cannot be set in a study"),
    ("quick", ["encoder=cnn,nope"], "unknown encoder preset 'nope'"),
    ("quick", ["train_ratio=-1"], "train_ratio must be a number >= 0, got -1"),
    ("quick", ["evaluation.episodes=1,2"], "take one value, not a sweep"),
    ("quick", ["evaluation.episodez=2"], "unknown key(s) episodez"),
    ("quick", ["report.bootstrapp=10"], "study report: unknown key(s) bootstrapp"),
])
def test_bad_study_input_is_named(preset, overrides, message):
    with pytest.raises(ValueError, match=None) as error:
        make_plan(preset, overrides, STUDY)
    assert message in str(error.value)


def test_user_study_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: quick\ngrid: {encoder: [cnn], seed: [0, 1]}\nbogus: 1\n")
    with pytest.raises(ValueError, match="unknown key"):
        make_plan(str(path), [], tmp_path)
    path.write_text("base: quick\ndescription: mine\ngrid: {encoder: [cnn], seed: [0, 1]}\n")
    plan, _ = make_plan(str(path), [], tmp_path)
    assert plan.preset == "mine" and [s.name for s in plan.runs] == ["dmc__cnn__seed0", "dmc__cnn__seed1"]


def test_gradient_updates_and_encoder_images_by_hand():
    # 10,000 env steps / action repeat 2 = 5,000 loop iterations; updates start at iteration 1,000 (prefill 2,000
    # env steps) or once 16 x 64 sequences of 65 steps can be sampled: 1,024 + 64 = 1,088, the later;
    # (5,000 - 1,088 + 1) x ratio 64 / 1,024 = 244.6
    assert gradient_updates(10_000, 2_000, 2, 1, 64, 16 * 64, 65) == 244
    # the quick preset: 8,000 iterations from 256 + 16 = 272 on, 64 / 256 per iteration: 7,729 / 4 = 1,932.25
    assert gradient_updates(16_000, 0, 2, 1, 64, 16 * 16, 17) == 1_932
    # 4 envs, 2 env steps each per iteration: 1,250 iterations; 1,024 / 4 + 64 = 320 on; 931 x 4 x 64 / 1,024
    assert gradient_updates(10_000, 0, 2, 4, 64, 16 * 64, 65) == 232
    assert gradient_updates(1_000, 2_000, 1, 1, 64, 1024, 65) == 0  # never prefilled
    assert encoder_images(100, 5_000, "frozen", cache=True) == 100
    assert encoder_images(100, 5_000, "frozen", cache=False) == 5_100
    assert encoder_images(100, 5_000, "full", cache=True) == 5_100


def test_estimate_uses_stated_costs():
    plan, _ = make_plan("paper", [], STUDY)
    cfg = run_config(STUDY, plan.run("driving__clip-frozen__seed0"))
    estimate = estimate_run(cfg, {"update_seconds": {"default": 1.0, "clip frozen": 0.5},
                                  "env_step_seconds": {"driving": 0.01}})
    # 400k env steps at action repeat 2 = 200k agent steps; no prefill, updates from step 1,024 + 64 = 1,088 on:
    # (200,000 - 1,088 + 1) x 512 / 1,024 = 99,456.5
    assert (estimate.agent_steps, estimate.updates) == (200_000, 99_456)
    assert estimate.hours == pytest.approx((99_456 * 0.5 + 200_000 * 0.01) / 3600)
    assert (estimate.evaluation_episodes, estimate.evaluation_hours) == (0, None)
    assert estimate_run(cfg, {}).hours is None
    evaluated = estimate_run(cfg, {"update_seconds": {"default": 1.0}, "env_step_seconds": {"default": 0.0},
                                   "eval_episode_seconds": {"default": 30, "clip frozen": 60}}, episodes_per_suite=4)
    assert evaluated.evaluation_episodes == 4 * 5  # the driving family's five suites
    assert evaluated.evaluation_hours == pytest.approx(20 * 60 / 3600)
    assert evaluated.total_hours == pytest.approx(99_456 / 3600 + 20 * 60 / 3600)


def test_a_restated_estimate_or_description_is_the_same_study():
    import dataclasses

    plan, _ = make_plan("quick", ["encoder=cnn"], STUDY)
    restated = dataclasses.replace(plan, description="new words", estimate={"device": "another"},
                                   report={"bootstrap": 10}, launcher=[])
    assert plan != restated and plan.same_study(restated)
    assert not plan.same_study(dataclasses.replace(plan, evaluation={**plan.evaluation, "episodes": 99}))
    assert not plan.same_study(make_plan("quick", ["encoder=cnn", "seed=0,1"], STUDY)[0])


def test_paper_dry_run_lists_42_runs_with_configs_and_compute(capsys, tmp_path):
    assert main(["study", "paper", "--dry-run", "--dir", str(tmp_path / "paper")]) == 0
    out = capsys.readouterr().out
    assert "study paper: 42 runs" in out
    assert out.count("     config: ") == 42 and out.count("     compute: ") == 42
    assert "driving__clip-full__seed2" in out and "env.size=224" in out and "steps=400000" in out
    # 21 x 499,456 (table-top: (1M - 1,088 + 1) x 512 / 1,024) + 21 x 99,456 (driving: (200k - 1,088 + 1) / 2)
    assert "total: 12,577,152 updates" in out
    assert not (tmp_path / "paper").exists()  # a dry run writes nothing


def test_quick_is_the_default_preset(capsys, tmp_path):
    assert main(["study", "--dry-run", "--dir", str(tmp_path / "q")]) == 0
    out = capsys.readouterr().out
    assert "study quick: 2 runs" in out
    assert "launcher: hydra/launcher=joblib hydra.launcher.n_jobs=2; 2 runs at once: ~" in out
    assert main(["study", "seed=0,1", "--dry-run", "--dir", str(tmp_path / "q")]) == 0
    assert "study quick: 4 runs" in capsys.readouterr().out
    # options between the preset and its overrides: argparse alone would call `seed=0,1,2` unrecognised
    assert main(["study", "quick", "--dry-run", "--dir", str(tmp_path / "q"), "seed=0,1,2"]) == 0
    assert "study quick: 6 runs" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["study", "quick", "--dry-run", "seed=0", "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_dmc_shift_grid_runs_seed_by_seed_and_states_its_compute(capsys, tmp_path):
    plan, _ = make_plan("dmc-shift", [], STUDY)
    assert [s.name for s in plan.runs[:3]] == ["dmc__cnn__seed0", "dmc__efficientnet_lite0-frozen__seed0",
                                               "dmc__efficientnet_lite0-partial__seed0"]  # whole seeds first
    assert len(plan.runs) == 9 and plan.evaluation["episodes"] >= 50
    config = run_config(STUDY, plan.run("dmc__efficientnet_lite0-partial__seed2"))
    assert (config.env.name, config.env.size, config.encoder.finetune) == ("dmc:walker-stand", 64, "partial")
    assert config.encoder.input_size == 128
    assert main(["study", "dmc-shift", "--dry-run", "--dir", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    # 9 x (50,000 agent steps - 272 + 1) x 64 / 256 = 9 x 12,432
    assert out.count("     compute: ") == 9 and "total: 111,888 updates" in out


def test_longest_first_launches_the_runs_with_the_most_work_left_first():
    plan, configs = make_plan("dmc-shift", [], STUDY)
    states = {"dmc__cnn__seed0": (RunState.FINISHED, 100_000),
              "dmc__efficientnet_lite0-frozen__seed0": (RunState.INTERRUPTED, 95_000),
              "dmc__cnn__seed1": (RunState.TRAINED, 100_000)}
    statuses = [RunStatus(s.name, *states.get(s.name, (RunState.PENDING, 0))) for s in plan.runs]

    def left(k):
        return work_left(statuses[k], configs[statuses[k].name], plan)

    # dmc-shift's costs: 12,432 updates x s/update + 50,000 agent steps x 0.02 s; 150 episodes x s/episode
    cnn, frozen, partial = ((12_432 * seconds + 1_000) / 3600 for seconds in (0.38, 0.4, 1.05))
    cnn_eval, pvm_eval = 150 * 11 / 3600, 150 * 16 / 3600
    assert (left(0).hours, left(0).updates) == (0.0, 0.0)  # finished
    assert left(1).hours == pytest.approx(0.05 * frozen + pvm_eval) and left(1).updates == pytest.approx(0.05 * 12_432)
    assert left(2).hours == pytest.approx(partial + pvm_eval)
    assert (left(3).hours, left(3).updates) == (pytest.approx(cnn_eval), 0.0)  # trained: its evaluation is left
    assert launch_order(statuses, plan, configs, longest_first=False) == [s.name for s in plan.runs[1:]]
    assert launch_order(statuses, plan, configs, longest_first=True) == [
        "dmc__efficientnet_lite0-partial__seed0", "dmc__efficientnet_lite0-partial__seed1",
        "dmc__efficientnet_lite0-partial__seed2", "dmc__efficientnet_lite0-frozen__seed1",
        "dmc__efficientnet_lite0-frozen__seed2", "dmc__cnn__seed2", "dmc__efficientnet_lite0-frozen__seed0",
        "dmc__cnn__seed1"]
    total = 3 * (partial + pvm_eval) + 2 * (frozen + pvm_eval) + (cnn + cnn_eval) + left(1).hours + cnn_eval
    assert hours_left(statuses, plan, configs, ["hydra/launcher=basic"]) == \
        f"; ~{total:.1f} h of compute left by the preset's estimate"
    # Four workers take the queue in order (left(1) 0.750, partial 4.571, cnn_eval 0.458, frozen 2.326, cnn 2.048 h):
    # plan order ends at 7.4 h (the last partial starts at 2.8 h); longest first at 6.6 h (the CNN starts at 4.6 h).
    ray4 = ["hydra/launcher=ray", "hydra.launcher.n_jobs=4"]
    assert hours_left(statuses, plan, configs, ray4).endswith(
        ", ~7.4 h wall at 4 runs at once (~6.6 h with --longest-first)")
    assert hours_left(statuses, plan, configs, ray4, longest_first=True).endswith(", ~6.6 h wall at 4 runs at once")
    # A running run holds a worker from the start: partial seed 2 at 50k (2.619 h left) first, then plan order
    # (5.4 h if it queued last); longest first ends at 5.3 h too, so it is not mentioned.
    statuses[-1] = RunStatus(statuses[-1].name, RunState.RUNNING, 50_000)
    assert hours_left(statuses, plan, configs, ray4).endswith(", ~5.3 h wall at 4 runs at once")
    plan.estimate = {}  # no stated costs: no hours; longest first goes by the updates left
    assert left(1).hours is None and hours_left(statuses, plan, configs, []) == ""
    assert launch_order(statuses, plan, configs, longest_first=True)[-2:] == [
        "dmc__efficientnet_lite0-frozen__seed0", "dmc__cnn__seed1"]


def test_a_skip_rule_leaves_its_runs_out(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: dmc-shift\ngrid: {seed: [0], env: [dmc], encoder: [cnn, mobilenet_v2], "
                    "finetune: [frozen, partial]}\nrules: [{when: {encoder: mobilenet_v2, finetune: partial}, "
                    "skip: true}]\n")
    plan, _ = make_plan(str(path), [], STUDY)
    assert [s.name for s in plan.runs] == ["dmc__cnn__seed0", "dmc__mobilenet_v2-frozen__seed0"]


def test_a_rule_needs_set_or_skip(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: quick\nrules: [{when: {encoder: cnn}}]\n")
    with pytest.raises(ValueError, match="'set' .* or 'skip: true'"):
        make_plan(str(path), [], STUDY)


def test_a_presets_launcher_runs_its_runs_side_by_side_unless_the_command_line_names_one(capsys, tmp_path):
    plan, configs = make_plan("quick", [], STUDY)
    assert plan.launcher == ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    assert all(cfg.threads == 1 for cfg in configs.values())  # one torch thread per run: no oversubscription
    assert main(["study", "quick", "hydra/launcher=basic", "--dry-run", "--dir", str(tmp_path / "q")]) == 0
    out = capsys.readouterr().out
    assert "launcher: hydra/launcher=basic\n" in out and "runs at once" not in out


def test_queue_wall_hours_by_hand():
    assert queue_wall_hours([1, 1, 1, 3], workers=2) == 4  # the long run starts last and ends alone
    assert queue_wall_hours([3, 1, 1, 1], workers=2) == 3  # longest first: the short ones fill the other worker
    assert queue_wall_hours([4, 3, 2, 2], workers=2) == 6  # 3+2 on one, 4+2 on the other: above the total / 2
    assert queue_wall_hours([2, 5, 1], workers=1) == 8
    assert queue_wall_hours([2, 5], workers=4) == 5
    assert queue_wall_hours([], workers=2) == 0


def test_local_runs_share_wall_time_at_most_one_per_core():
    joblib3 = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=3"]
    assert runs_sharing_wall_time(joblib3, cores=2) == 2  # three runs on two cores: each 1.5x slower
    assert runs_sharing_wall_time(joblib3, cores=4) == 3
    slurm = ["hydra/launcher=submitit_slurm", "hydra.launcher.n_jobs=3"]  # hypothetical: other machines' cores
    assert runs_sharing_wall_time(slurm, cores=2) == 3


def test_parallel_jobs_by_hand():
    assert parallel_jobs([]) == 1
    assert parallel_jobs(["hydra/launcher=joblib", "hydra.launcher.n_jobs=3"]) == 3
    assert parallel_jobs(["hydra/launcher=joblib", "hydra.launcher.n_jobs=-1"]) == 1  # joblib's "all cores": unknown


def test_a_launcher_entry_must_be_a_hydra_override(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: quick\nlauncher: [n_jobs=2]\n")
    with pytest.raises(ValueError, match="n_jobs=2 is not a Hydra launcher override"):
        make_plan(str(path), [], STUDY)


def test_estimate_counts_the_updates_a_run_makes(tiny_overrides):
    from pvm_mbrl.training.config import compose_config
    from pvm_mbrl.training.loop import Trainer

    cfg = compose_config([*tiny_overrides, "steps=160", "prefill=60", "train_ratio=24", "env.action_repeat=4",
                          "eval_episodes=1", "eval_every=1000"])
    trainer = Trainer(cfg)
    trainer.run()
    # 40 iterations, from max(60 / 4, 2 x 8 + 8) = 24 on: 17 x 24 / 16 = 25.5
    assert trainer.updates == estimate_run(cfg, {}).updates == 25
