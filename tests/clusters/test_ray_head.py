"""Hydra's Ray launcher against a real, private Ray head on 127.0.0.1 (started and stopped here).

The tests share one head and run in file order: jobs via a Hydra subprocess, jobs via Hydra called in-process,
then the head's sockets, then its shutdown (the last test stops it and checks nothing survived).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.clusters.ray_head import RayHead, alive, local_ray_head

pytestmark = pytest.mark.cluster

PROBE_APP = Path(__file__).with_name("hydra_probe_app.py")


def ray_launcher_overrides(address: str) -> list[str]:
    """What a multirun needs to send its jobs to an existing head with hydra/launcher=ray."""
    return [
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.address={address}",
        # The launcher setdefaults object_store_memory=75MB, which ray.init rejects when joining a cluster.
        "+hydra.launcher.ray.init.object_store_memory=null",
        # ray.remote() options per job; `remote` is an empty dict by default, hence the `+`.
        "+hydra.launcher.ray.remote.num_cpus=1",
    ]


@dataclass
class SharedHead:
    head: RayHead
    stack: contextlib.ExitStack
    job_records: list[dict] = field(default_factory=list)  # what every probe job reported, across tests

    def stop(self) -> None:
        self.stack.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedHead]:
    stack = contextlib.ExitStack()
    head = stack.enter_context(local_ray_head(tmp_path_factory.mktemp("ray_head"), cpus=2))
    state = SharedHead(head=head, stack=stack)
    try:
        yield state
    finally:
        state.stop()  # idempotent: the last test may have stopped it already


def _read_records(out_dir: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(out_dir.glob("*.json"))}


def _assert_ran_on(records: dict[str, dict], head: RayHead, tags: set[str]) -> None:
    assert set(records) == tags
    for tag, rec in records.items():
        assert rec["ray_gcs_address"] == head.address, f"job {tag} did not run in a worker of this head: {rec}"
        assert rec["sid"] == head.launcher_pid, f"job {tag} ran outside the head's process session: {rec}"


def test_hydra_multirun_subprocess_runs_every_job_on_the_head(shared: SharedHead, tmp_path: Path) -> None:
    head = shared.head
    out = tmp_path / "out"
    cmd = [
        sys.executable, str(PROBE_APP), "--multirun", *ray_launcher_overrides(head.address),
        f"hydra.sweep.dir={tmp_path / 'sweep'}", f"out_dir={out}", "tag=a,b,c",
    ]
    run = subprocess.run(cmd, env={**os.environ, **head.env}, cwd=tmp_path, capture_output=True, text=True,
                         timeout=180)
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    assert "Ray Launcher is launching 3 jobs" in run.stdout + run.stderr
    records = _read_records(out)
    _assert_ran_on(records, head, {"a", "b", "c"})
    assert all(rec["pid"] != os.getpid() for rec in records.values())
    shared.job_records.extend(records.values())


def test_hydra_multirun_in_process_returns_jobreturns_and_raises_job_errors(
        shared: SharedHead, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = shared.head
    for key, value in head.env.items():
        monkeypatch.setenv(key, value)
    import ray
    import ray._private.ray_constants as ray_constants
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.utils import JobReturn, JobStatus

    from tests.clusters.hydra_probe_app import CONFIG_NAME, probe_task

    # Read at `import ray`: if ray was imported before the env was set, the driver would rewrite 127.0.0.1 to the
    # machine's address and wait forever for the GCS there.
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
    root = logging.getLogger()
    saved_logging = (root.level, list(root.handlers))  # Hydra reconfigures the root logger

    def multirun(overrides: list[str]) -> list:
        GlobalHydra.instance().clear()
        hydra = Hydra.create_main_hydra2(task_name="probe", config_search_path=create_config_search_path(None))
        try:
            return hydra.multirun(config_name=CONFIG_NAME, task_function=probe_task, overrides=[
                *ray_launcher_overrides(head.address), f"hydra.sweep.dir={tmp_path / 'sweep'}",
                # without @hydra.main there is no version_base, so Hydra 1.1's chdir-into-the-job-dir applies
                "hydra.job.chdir=false", *overrides])
        finally:
            GlobalHydra.instance().clear()

    assert not ray.is_initialized(), "another test left a Ray driver connected in this process"
    try:
        batches = multirun([f"out_dir={tmp_path / 'ok'}", "tag=x,y"])
        # One list of JobReturn per sweep batch (the basic sweeper sends everything as one batch).
        assert len(batches) == 1 and len(batches[0]) == 2
        assert all(isinstance(job, JobReturn) and job.status is JobStatus.COMPLETED for job in batches[0])
        assert sorted(job.return_value["tag"] for job in batches[0]) == ["x", "y"]
        _assert_ran_on(_read_records(tmp_path / "ok"), head, {"x", "y"})

        # A failing job surfaces as its own exception once the whole batch has finished (the sweeper reads
        # every JobReturn.return_value); the batch's other jobs still ran.
        with pytest.raises(RuntimeError, match="probe job f failed on purpose"):
            multirun([f"out_dir={tmp_path / 'mixed'}", "tag=f,g", "fail_tag=f"])
        assert (tmp_path / "mixed" / "g.json").exists() and not (tmp_path / "mixed" / "f.json").exists()
    finally:
        ray.shutdown()  # the launcher leaves this process connected (and would reuse it for any later address)
        root.setLevel(saved_logging[0])
        root.handlers[:] = saved_logging[1]
    shared.job_records.extend(_read_records(tmp_path / "ok").values())


def _loopback(ip: str) -> str:
    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)  # gRPC listens on IPv6 sockets as ::ffff:127.0.0.1
    return str(mapped or addr)


def test_head_listens_on_127_0_0_1_only(shared: SharedHead) -> None:
    head = shared.head
    bound: list[tuple[int, str, str, int]] = []
    for proc in head.processes():
        with contextlib.suppress(psutil.NoSuchProcess):
            for conn in proc.net_connections("inet"):
                if conn.status == psutil.CONN_LISTEN or not conn.raddr:  # TCP listeners and unconnected UDP
                    bound.append((proc.pid, proc.name(), conn.laddr.ip, conn.laddr.port))
    # Workers exit with their driver, so their sockets were recorded by the probe jobs themselves.
    for rec in shared.job_records:
        bound.extend((rec["pid"], "probe job", ip, port) for ip, port in rec.get("listening", []))
    assert any(port == head.ports["port"] for *_, port in bound), f"GCS port not seen listening: {bound}"
    wrong = [entry for entry in bound if _loopback(entry[2]) != "127.0.0.1"]
    assert not wrong, f"sockets bound beyond 127.0.0.1: {wrong}"


def test_stopping_the_head_leaves_no_process(shared: SharedHead) -> None:
    head = shared.head
    owned = {proc.pid: proc for proc in head.processes()}  # also recorded in head.seen for the stop
    assert head.launcher_pid in owned and len(owned) >= 3  # ray start, gcs_server, raylet at least
    shared.stop()
    survivors = [f"{proc.pid} {proc.name()}" for proc in head.seen.values() if alive(proc)]
    for rec in shared.job_records:  # workers that ran jobs: gone, unless the PID now belongs to someone else
        with contextlib.suppress(psutil.NoSuchProcess):
            proc = psutil.Process(rec["pid"])
            if abs(proc.create_time() - rec["create_time"]) < 0.01 and alive(proc):
                survivors.append(f"{proc.pid} {proc.name()} (job {rec['tag']})")
    assert not survivors, f"left running after the head stopped: {survivors}"
    assert not head.temp_dir.exists()


def test_failed_start_stops_what_it_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A start that gives up halfway (here: a timeout shorter than Ray's ~3 s startup) leaves nothing running."""
    from tests.clusters import ray_head

    started: list[RayHead] = []

    class RecordingHead(ray_head.RayHead):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(ray_head, "RayHead", RecordingHead)
    with pytest.raises(TimeoutError), local_ray_head(tmp_path, start_timeout_s=1.5):
        pytest.fail("the head should not have come up in 1.5 s")
    assert len(started) == 1
    head = started[0]
    leftovers = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            owned = proc.pid == head.launcher_pid or os.getsid(proc.pid) == head.launcher_pid or any(
                str(head.temp_dir) in arg for arg in proc.info["cmdline"] or ())
            if owned and alive(proc):  # a killed orphan may linger as a zombie until PID 1 reaps it
                leftovers.append(f"{proc.pid} {proc.name()} {proc.info['cmdline']}")
    assert not leftovers, f"left running after a failed start: {leftovers}"
    assert not head.temp_dir.exists()
