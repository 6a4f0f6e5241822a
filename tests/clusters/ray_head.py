"""A real, private Ray head node on 127.0.0.1 for cluster tests, started and stopped by the test itself.

`ray start --head --block` runs in a new session (its PID is the session id), so everything it spawns
(gcs_server, raylet, agents, workers) can be found and stopped by PID without `ray stop`, which would
kill every Ray instance on the machine, including other sessions' heads.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

HOST = "127.0.0.1"
RAY_BIN = Path(sys.executable).with_name("ray")
# A unix socket path must fit in 107 bytes; Ray puts them at
# <temp>/session_<YYYY-mm-dd_HH-MM-SS_micro>_<pid>/sockets/plasma_store (about 65 bytes after <temp>).
MAX_TEMP_DIR_LEN = 40
# Every port the head listens on is pinned to one random free block (workers and drivers take theirs from the
# worker range), so concurrent sessions don't collide. These are the `ray start` flags.
NAMED_PORTS = (
    "port",  # GCS
    "node-manager-port",
    "object-manager-port",
    "ray-client-server-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
    "metrics-export-port",
    "dashboard-port",  # the dashboard is off, but pinned in case a Ray version starts it anyway
)
# Fixed-default metrics ports (44217, 44227) that only environment variables move; two heads would collide.
ENV_PORTS = ("AUTOSCALER_METRIC_PORT", "DASHBOARD_METRIC_PORT")
PR_SET_PDEATHSIG = 1
WORKER_PORTS = 40  # drivers and workers each take one; 2 CPUs need far fewer


@dataclass
class RayHead:
    """A running head: where to reach it, what a client needs in its environment, and what it owns."""

    address: str  # "127.0.0.1:<gcs port>", for ray.init(address=...) / hydra.launcher.ray.init.address
    env: dict[str, str]  # merge into a client's environment: {**os.environ, **head.env}
    temp_dir: Path
    log_file: Path
    ports: dict[str, int]
    launcher_pid: int  # the `ray start --block` process; also the session id of everything it spawns
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def processes(self) -> list[psutil.Process]:
        """Live processes of this head (daemons and workers); also remembered for the final clean-up."""
        found = _scan(self.launcher_pid, str(self.temp_dir))
        for proc in found:
            self.seen.setdefault(proc.pid, proc)
        return found

    @property
    def pids(self) -> set[int]:
        """PIDs of the live processes of this head."""
        return {proc.pid for proc in self.processes()}


def _session_id(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _scan(launcher_pid: int, temp_dir: str) -> list[psutil.Process]:
    """Processes in the launcher's session, its descendants, or naming our private temp dir on their command line."""
    found: dict[int, psutil.Process] = {}
    with contextlib.suppress(psutil.Error):
        launcher = psutil.Process(launcher_pid)
        found[launcher.pid] = launcher
        for child in launcher.children(recursive=True):
            found[child.pid] = child
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid in found or proc.pid == os.getpid():
            continue
        if _session_id(proc.pid) == launcher_pid or _owns(proc.info.get("cmdline") or [], temp_dir):
            found[proc.pid] = proc
    return [proc for proc in found.values() if alive(proc)]


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _pick_ports(rng: random.Random) -> tuple[dict[str, int], tuple[int, int]]:
    """Random free ports below the kernel's ephemeral range, so outgoing connections cannot grab them later."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    low = max(low, 12000)
    names = NAMED_PORTS + ENV_PORTS
    for _ in range(200):
        base = rng.randrange(10000, low - len(names) - WORKER_PORTS)
        block = range(base, base + len(names) + WORKER_PORTS)
        if all(_bindable(p) for p in block):
            return dict(zip(names, block, strict=False)), (block[len(names)], block[-1])
    raise RuntimeError(f"no free block of {len(names) + WORKER_PORTS} ports on {HOST} below {low}")


def _die_with_parent() -> None:
    """In the forked child before exec: SIGTERM `ray start` if the process that started it dies (even by SIGKILL).

    `ray start --block` handles SIGTERM by stopping its daemons, so a killed test run leaves nothing behind.
    Linux-only (prctl); the "parent" is the thread that forked, so start heads from a long-lived thread.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _make_temp_dir(workdir: Path) -> Path:
    # Inside the test's own dir when the path is short enough for Ray's unix sockets, else a short one in /tmp.
    parent = workdir if len(str(workdir)) + len("/rayh-xxxxxxxx") <= MAX_TEMP_DIR_LEN else Path("/tmp")
    return Path(tempfile.mkdtemp(prefix="rayh-", dir=parent))


def _owns(cmdline: list[str], temp_dir: str) -> bool:
    return any(arg.endswith(temp_dir) or f"{temp_dir}/" in arg for arg in cmdline)


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a zombie has exited; only its parent's reaping is pending)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _stop(head: RayHead, proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGTERM `ray start --block` (it drains and stops its children), then terminate/kill any survivor by PID."""
    head.processes()  # remember workers etc. before their parent goes away
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        head.processes()
        left = [p for p in head.seen.values() if p.pid != proc.pid and alive(p)]
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
        if not left and proc.poll() is not None:
            break
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)
        psutil.wait_procs(left, timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)  # our direct child: reap it


def _start(workdir: Path, cpus: int, object_store_bytes: int, timeout_s: float) -> tuple[RayHead, subprocess.Popen]:
    """One attempt at `ray start`; on any failure everything it started is stopped before raising."""
    temp_dir = _make_temp_dir(workdir)
    ports, (min_worker, max_worker) = _pick_ports(random.Random())
    address = f"{HOST}:{ports['port']}"
    env = {
        # On Linux Ray otherwise resolves the node (and every driver's) IP to the machine's network address.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # A bare ray.init() in a client then joins this head instead of discovering another one on the machine.
        "RAY_ADDRESS": address,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    cmd = [
        str(RAY_BIN), "start", "--head", "--block",
        f"--node-ip-address={HOST}", f"--num-cpus={cpus}", "--num-gpus=0",
        f"--object-store-memory={object_store_bytes}", f"--temp-dir={temp_dir}",
        "--include-dashboard=false", "--disable-usage-stats",
        f"--min-worker-port={min_worker}", f"--max-worker-port={max_worker}",
        *(f"--{name}={ports[name]}" for name in NAMED_PORTS),
    ]
    log_file = workdir / f"ray_head_{temp_dir.name}.log"
    child_env = {key: val for key, val in {**os.environ, **env}.items() if key != "RAY_ADDRESS"}  # not a head to join
    child_env.update({name: str(ports[name]) for name in ENV_PORTS})
    try:
        with open(log_file, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=child_env, start_new_session=True, preexec_fn=_die_with_parent)
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    head = RayHead(address=address, env=env, temp_dir=temp_dir, log_file=log_file, ports=ports,
                   launcher_pid=proc.pid)
    try:
        # `ray start` writes the GCS address here once the head (GCS + raylet) is up.
        ready = temp_dir / "ray_current_cluster"
        deadline = time.monotonic() + timeout_s
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {proc.returncode}:\n{log_file.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Ray head not up after {timeout_s}s:\n{log_file.read_text()[-4000:]}")
            time.sleep(0.25)
        head.processes()
    except BaseException:
        _teardown(head, proc)
        raise
    return head, proc


def _teardown(head: RayHead, proc: subprocess.Popen) -> None:
    try:
        _stop(head, proc)
    finally:
        shutil.rmtree(head.temp_dir, ignore_errors=True)


@contextlib.contextmanager
def local_ray_head(workdir: Path, cpus: int = 2, object_store_bytes: int = 200_000_000,
                   start_timeout_s: float = 90.0, attempts: int = 2) -> Iterator[RayHead]:
    """Start a Ray head bound to 127.0.0.1 on free ports; yield it; stop every process it started.

    A failed start is retried with fresh ports (another session may grab a port between our check and Ray's bind).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        try:
            head, proc = _start(workdir, cpus, object_store_bytes, start_timeout_s)
            break
        except RuntimeError:
            if attempt == attempts:
                raise
    try:
        yield head
    finally:
        _teardown(head, proc)
