from pathlib import Path

from pvm_mbrl.memory import cgroup_limit, cgroup_limit_files, memory_limit_bytes


def test_cgroup_limit_values():
    assert cgroup_limit("8589934592\n") == 8 * 2**30
    assert cgroup_limit("max\n") is None  # v2: no limit
    assert cgroup_limit("9223372036854771712\n") is None  # v1: no limit
    assert cgroup_limit("") is None


def test_limit_files_of_v2_and_v1_groups_and_their_parents():
    root = Path("/cg")
    assert cgroup_limit_files("0::/job_7/step_0\n", root) == [
        root / "job_7/step_0/memory.max", root / "job_7/memory.max", root / "memory.max"]
    assert cgroup_limit_files("5:cpu,cpuacct:/x\n4:memory:/slurm/uid_1\n", root) == [
        root / "memory/slurm/uid_1/memory.limit_in_bytes", root / "memory/slurm/memory.limit_in_bytes",
        root / "memory/memory.limit_in_bytes"]


def test_the_smallest_limit_above_the_process_wins(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("0::/job_7/step_0\n")
    (tmp_path / "job_7/step_0").mkdir(parents=True)
    (tmp_path / "job_7/step_0/memory.max").write_text("max\n")
    (tmp_path / "job_7/memory.max").write_text(f"{3 * 2**30}\n")  # the job's --mem=3G
    assert memory_limit_bytes(tmp_path, proc) == 3 * 2**30
    (tmp_path / "job_7/memory.max").write_text("max\n")
    physical = memory_limit_bytes(tmp_path, proc)
    assert physical > 3 * 2**30  # no cap left: the machine's RAM
    assert memory_limit_bytes(tmp_path, tmp_path / "missing") == physical
