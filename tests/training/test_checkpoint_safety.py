"""Checkpoints under failure: the previous one kept, non-finite weights refused, a full disk cleaned up after,
a truncated file reported with the way back."""

import contextlib
import errno
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from pvm_mbrl import checkpoint as checkpoint_module
from pvm_mbrl.atomic import atomic_write
from pvm_mbrl.checkpoint import (
    free_space_warning,
    load_checkpoint,
    previous_checkpoint_path,
    save_checkpoint,
)
from pvm_mbrl.cli import main
from pvm_mbrl.errors import CheckpointReadError, CheckpointWriteError
from pvm_mbrl.training.config import compose_config
from pvm_mbrl.training.loop import Trainer

SHORT = ["steps=80", "prefill=40", "train_ratio=16", "log_every=40", "eval_every=1000", "eval_episodes=1",
         "checkpoint_every=40", "env.action_repeat=4"]


def test_atomic_write_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write(path, lambda f: f.write(b"old"))

    def fail(f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(path, fail)
    with pytest.raises(ValueError, match="bad"):
        atomic_write(path, lambda f: f.write(b"new"), verify=lambda tmp: (_ for _ in ()).throw(ValueError("bad")))
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"] and path.read_bytes() == b"old"


def test_saving_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    assert save_checkpoint(path, {"x": torch.zeros(3)}) == path.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    save_checkpoint(path, {"x": torch.ones(3)})
    save_checkpoint(path, {"x": torch.full((3,), 2.0)})
    assert previous_checkpoint_path(path).name == "checkpoint.prev.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]
    assert load_checkpoint(path)["x"].tolist() == [2.0] * 3
    assert load_checkpoint(previous_checkpoint_path(path))["x"].tolist() == [1.0] * 3


def test_non_finite_weights_are_never_written(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"agent": {"model": {"w": torch.ones(2)}}})
    for bad in (float("nan"), float("inf")):
        with pytest.raises(CheckpointWriteError, match=r"non-finite values \(inf or NaN\) in agent.model.w; the "
                                                       r"previous checkpoint .* is intact"):
            save_checkpoint(path, {"agent": {"model": {"w": torch.tensor([1.0, bad])}}})
    assert load_checkpoint(path)["agent"]["model"]["w"].tolist() == [1.0, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_a_checkpoint_that_does_not_load_back_is_not_kept(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"x": torch.zeros(3)})

    def corrupting_save(state, file):
        file.write(b"PK\x03\x04 not a whole zip")

    monkeypatch.setattr(checkpoint_module, "torch_save", corrupting_save)
    with pytest.raises(CheckpointWriteError, match="does not load back, so it was not kept"):
        save_checkpoint(path, {"x": torch.ones(3)})
    assert load_checkpoint(path)["x"].tolist() == [0.0] * 3
    assert not (tmp_path / "checkpoint.pt.tmp").exists()


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_flipped_byte_fails_the_crc_check(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"x": torch.randn(100_000)})
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the tensor's bytes: torch.load alone would not notice
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointReadError, match=r"truncated or corrupt .*ValueError: .*data/0 fails its CRC check"):
        load_checkpoint(path)


def test_a_truncated_or_corrupt_checkpoint_names_the_file_and_the_way_back(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"x": torch.zeros(1000)})
    truncate(path)
    with pytest.raises(CheckpointReadError, match=rf"checkpoint {path} cannot be loaded: the file is truncated or "
                                                  r"corrupt .*no checkpoint.prev.pt beside it"):
        load_checkpoint(path)
    save_checkpoint(tmp_path / "other.pt", {"x": torch.zeros(3)})
    save_checkpoint(tmp_path / "other.pt", {"x": torch.ones(3)})
    (tmp_path / "other.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointReadError, match=rf"move other.prev.pt over it: mv {tmp_path}/other.prev.pt "
                                                  rf"{tmp_path}/other.pt"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_resume_and_evaluate_of_a_truncated_checkpoint_exit_2_naming_it(tiny_overrides, capsys):
    overrides = [*tiny_overrides, *SHORT]
    Trainer(compose_config(overrides)).run()
    run_dir = compose_config(overrides).run_dir
    path = f"{run_dir}/checkpoint.pt"
    previous = previous_checkpoint_path(path)  # periodic at 40 and 80, then the final one at 80
    previous_step = load_checkpoint(previous)["counters"]["env_steps"]
    truncate(Path(path))
    capsys.readouterr()
    assert main(["train", *overrides, "steps=120"]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {path} cannot be loaded" in err and f"mv {previous} {path}" in err and "Traceback" not in err
    assert main(["evaluate", run_dir, "--episodes", "1", "--forgetting-images", "0"]) == 2
    assert f"checkpoint {path} cannot be loaded" in capsys.readouterr().err
    # Doing what the message says resumes from the checkpoint before it.
    previous.replace(path)
    resumed = Trainer(compose_config([*overrides, "steps=120"]))
    assert resumed.resuming and resumed.env_steps == previous_step


def full_disk_writer(monkeypatch):
    """torch.save as on a full disk: some bytes reach the file, then the write fails with ENOSPC."""
    def save(state, file):
        file.write(b"PK\x03\x04 the first bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "torch_save", save)


def test_disk_full_while_checkpointing_cleans_up_marks_failed_and_exits_2(tiny_overrides, monkeypatch, capsys):
    overrides = [*tiny_overrides, *SHORT]
    full_disk_writer(monkeypatch)
    assert main(["train", *overrides]) == 2
    err = capsys.readouterr().err
    run_dir = Path(compose_config(overrides).run_dir)
    assert f"could not write checkpoint {run_dir}/checkpoint.pt: No space left on device" in err
    assert "The partial file was removed" in err and "re-run the same command to resume" in err
    assert not list(run_dir.glob("*.tmp")) and not (run_dir / "checkpoint.pt").exists()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed" and "No space left on device" in status["reason"]


def test_free_space_is_compared_with_the_last_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    assert free_space_warning(path) is None  # no checkpoint yet: nothing to compare
    save_checkpoint(path, {"x": torch.zeros(10_000)})
    assert free_space_warning(path) is None
    size = path.stat().st_size
    monkeypatch.setattr(checkpoint_module.shutil, "disk_usage", lambda _: type("Usage", (), {"free": size})())
    assert f"and the last one took {size / 1024:.1f} KiB: the next may not fit" in free_space_warning(path)
    save_checkpoint(path, {"x": torch.zeros(10_000)})  # a checkpoint.prev.pt as large, given back by the next save
    assert free_space_warning(path) is None


@contextlib.contextmanager
def tmpfs(directory, size):
    directory.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                                 capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def test_a_real_full_disk_keeps_the_last_checkpoint(tmp_path, capsys):
    with tmpfs(tmp_path / "small", "256k") as disk:
        path = disk / "checkpoint.pt"
        save_checkpoint(path, {"x": torch.zeros(1000)})
        save_checkpoint(path, {"x": torch.ones(1000)})
        with pytest.raises(CheckpointWriteError, match=rf"could not write checkpoint {path}: No space left on device "
                                                       r"\(.* free\)\. The partial file was removed and the previous "
                                                       r"checkpoint .* is intact"):
            save_checkpoint(path, {"x": torch.zeros(100_000)})
        assert sorted(p.name for p in disk.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]
        assert load_checkpoint(path)["x"].tolist() == [1.0] * 1000
        # A disk nearly full before the write: warned first.
        (disk / "filler").write_bytes(b"\x00" * (shutil.disk_usage(disk).free - path.stat().st_size // 2))
        with pytest.raises(CheckpointWriteError), checkpoint_module.writing_checkpoint(path, lambda error: None):
            save_checkpoint(path, {"x": torch.zeros(100_000)})
        assert "the next may not fit" in capsys.readouterr().err
