"""A minimal Hydra app for launcher tests: each job writes `<out_dir>/<tag>.json` saying where it ran.

Run as a script (`python tests/clusters/hydra_probe_app.py --multirun tag=a,b out_dir=...`) or call
`probe_task` through Hydra programmatically. The Ray launcher cloudpickles the task function; Ray workers
may not have the repo's tests/ on sys.path, so this module is pickled by value (as `__main__` is anyway).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

CONFIG_NAME = "hydra_probe"


@dataclass
class ProbeConfig:
    out_dir: str = "???"  # required: where each job leaves its marker file
    tag: str = "a"  # the swept value; names the marker file
    fail_tag: str = ""  # the job with this tag raises, to see how a launcher reports a failure among successes


ConfigStore.instance().store(name=CONFIG_NAME, node=ProbeConfig)

if __name__ != "__main__":
    # Importers (tests calling Hydra in-process) ship this module's function and ProbeConfig (Hydra sends its
    # whole ConfigStore to each job) by value, not as an import path. Ray uses its own vendored cloudpickle.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with contextlib.suppress(ImportError):
        import ray.cloudpickle

        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def probe_task(cfg: DictConfig) -> dict:
    """The job: record process and Ray context into `<out_dir>/<tag>.json`; return the same record."""
    record: dict = {"tag": cfg.tag, "pid": os.getpid(), "sid": os.getsid(0), "ray_gcs_address": None}
    with contextlib.suppress(ImportError):
        import psutil

        me = psutil.Process()
        # where this job's process listens (a Ray worker runs gRPC servers), and its identity for liveness checks
        record.update(create_time=me.create_time(), listening=[
            [conn.laddr.ip, conn.laddr.port] for conn in me.net_connections("inet")
            if conn.status == psutil.CONN_LISTEN or (conn.type == socket.SOCK_DGRAM and not conn.raddr)])
    ray = sys.modules.get("ray")  # only present (and initialised) inside a Ray worker
    if ray is not None and ray.is_initialized():
        ctx = ray.get_runtime_context()
        record.update(ray_gcs_address=ctx.gcs_address, ray_node_id=ctx.get_node_id(), ray_worker_id=ctx.get_worker_id())
    if cfg.tag == cfg.fail_tag:
        raise RuntimeError(f"probe job {cfg.tag} failed on purpose")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{cfg.tag}.json").write_text(json.dumps(record))
    return record


if __name__ == "__main__":
    hydra.main(version_base=None, config_path=None, config_name=CONFIG_NAME)(probe_task)()
