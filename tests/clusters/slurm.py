"""A real, private single-node SLURM cluster on 127.0.0.1 for cluster tests, started and stopped by the test itself.

Debian's packages (`bash scripts/setup.sh` installs them; nothing of theirs under /etc is used or changed):
munged, mariadbd, slurmdbd, slurmctld and slurmd all run in the foreground as children of this process, each
in a new session (its PID is the session id), with every config, key, socket, database, spool, state, log
and PID file under `workdir`, and on free ports picked at start. So a second test session, or a real SLURM
on the machine, does not collide, and teardown can stop exactly what was started, by PID: it cancels the jobs,
stops the daemons, then anything of theirs still running (slurmstepd and job tasks, found by session id, by
SLURM_CONF in their environment, or by holding slurmd's log open), without pkill, killall or systemctl.

Jobs see the cluster through `SlurmCluster.env` (SLURM_CONF: slurm.conf names the private munge socket).
The node has `memory_mb` (default 8 GiB) whatever the machine has, so Hydra's submitit_slurm default
`mem_gb=4` fits; memory and CPUs are only bookkept (no cgroups in a container), not enforced.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

HOST = "127.0.0.1"
NODE = "localhost"  # slurmd runs as `slurmd -N localhost`; NodeAddr is 127.0.0.1
CLUSTER = "pvmtest"
PARTITION = "local"
DB_NAME = "slurm_acct_db"
DB_USER = "slurm"
# A unix socket path must fit in 107 bytes (sun_path). The longest are slurmd's step sockets,
# <dir>/spool/localhost/localhost_<job>.<step> (about 45 bytes past <dir>); for a longer workdir, sockets and
# slurmd's spool go to a short dir in /tmp instead (removed at exit).
MAX_SOCKET_DIR_LEN = 56
# sacct states after which a job does not change any more (sacct prints e.g. "CANCELLED by 0": first word).
TERMINAL_STATES = frozenset({
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
    "REVOKED", "TIMEOUT",
})
REQUIRED_BINARIES = (
    "munged", "munge", "unmunge", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd",
    "sacctmgr", "sinfo", "sacct", "sbatch", "squeue", "scancel", "scontrol",
)
# The daemons of a cluster, in start order (stopped in reverse).
DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")


class SlurmNotInstalledError(RuntimeError):
    pass


@dataclass
class SlurmCluster:
    """A running cluster: what a client needs in its environment, where things are, and what it started."""

    workdir: Path
    conf_path: Path  # slurm.conf; slurmdbd.conf lies beside it
    env: dict[str, str]  # merge into a client's environment: {**os.environ, **cluster.env}
    partition: str
    cluster_name: str
    node: str
    memory_mb: int  # the node's RealMemory: jobs must ask at most this (Hydra's mem_gb * 1024)
    cpus: int
    ports: dict[str, int]
    logs: dict[str, Path]  # daemon name -> its log file
    pids: dict[str, int] = field(default_factory=dict)  # daemon name -> PID (also its session id)

    def run(self, *args: str, timeout: float = 30.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a SLURM client command (sinfo, sacct, ...) against this cluster."""
        return subprocess.run(list(args), env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=timeout, check=check)

    def job_state(self, job_id: str | int) -> str | None:
        """The job's state as the accounting database (sacct) has it, e.g. "COMPLETED"; None while unknown."""
        out = self.run("sacct", "-j", str(job_id), "-X", "-n", "-P", "-o", "JobID,State", check=False).stdout
        for line in out.splitlines():
            job, _, state = line.partition("|")
            if job == str(job_id) and state:
                return state.split()[0]
        return None

    def wait_job_state(self, job_id: str | int, timeout: float = 60.0) -> str:
        """Poll sacct until the job is in a terminal state (slurmctld reports to slurmdbd asynchronously)."""
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state in TERMINAL_STATES:
                return state
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id} not finished per sacct after {timeout}s (last state {state})\n"
                           f"{self.log_tails()}")

    def log_tails(self, chars: int = 2500) -> str:
        """The end of each daemon's log, for error messages."""
        parts = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"
            parts.append(f"--- {name} ({path}) ---\n{text}")
        return "\n".join(parts)


def _check_installed() -> None:
    missing = [b for b in REQUIRED_BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if missing:
        raise SlurmNotInstalledError(
            f"SLURM test cluster needs {', '.join(missing)}: run `bash scripts/setup.sh` "
            "(installs slurm-wlm, slurmdbd, munge, mariadb-server)")


def _which(name: str) -> str:
    # Daemons live in /usr/sbin, which a non-login root PATH may lack.
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_ports(count: int) -> list[int]:
    """Ports the kernel hands out on 127.0.0.1; all held open together so they are distinct."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _hostname_is_loopback() -> bool:
    """CommunicationParameters=NoInAddrAny binds to what gethostname() resolves to; fine only if that is loopback."""
    try:
        return socket.gethostbyname(socket.gethostname()).startswith("127.")
    except OSError:
        return False


def _uts_namespace_works() -> bool:
    try:
        return subprocess.run(["unshare", "--uts", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _owned_procs(session_ids: set[int], conf_path: Path, slurmd_log: Path) -> list[psutil.Process]:
    """Live processes of this cluster: the daemons' sessions, plus what slurmd starts in sessions of its own.

    slurmstepd calls setsid(), so a job's stepd and tasks are not in slurmd's session. Tasks carry SLURM_CONF
    (set by slurmd even under --export=NONE); a slurmstepd keeps slurmd's log file open.
    """
    conf, log = str(conf_path), str(slurmd_log)
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if not _alive(proc):
                continue
            if (os.getsid(proc.pid) in session_ids or proc.environ().get("SLURM_CONF") == conf
                    or any(f.path == log for f in proc.open_files())):
                found.append(proc)
        except (OSError, psutil.Error):
            continue
    return found


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a zombie has exited; only its parent's reaping is pending)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def pids_alive(pids: set[int] | list[int]) -> list[int]:
    """Which of these PIDs still run (for tests asserting a clean teardown)."""
    alive = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            if _alive(psutil.Process(pid)):
                alive.append(pid)
    return alive


class _Launcher:
    """Starts daemons as session leaders and stops them (and their sessions) by PID, in reverse order."""

    def __init__(self, env: dict[str, str], log_dir: Path, uts_prefix: list[str], conf_path: Path,
                 slurmd_log: Path) -> None:
        self.env = env
        self.conf_path = conf_path
        self.slurmd_log = slurmd_log
        self.log_dir = log_dir
        self.uts_prefix = uts_prefix
        self.procs: dict[str, subprocess.Popen] = {}
        self.seen: dict[int, psutil.Process] = {}

    def start(self, name: str, cmd: list[str], uts: bool = False) -> subprocess.Popen:
        out = open(self.log_dir / f"{name}.stdout", "wb")  # noqa: SIM115 - the daemon keeps writing to it
        try:
            proc = subprocess.Popen((self.uts_prefix if uts else []) + cmd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=self.env, start_new_session=True)
        finally:
            out.close()
        self.procs[name] = proc
        return proc

    def check_running(self, logs: str) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} during startup\n{logs}")

    def remember(self) -> None:
        """Note every process of the cluster now, so ones reparented or orphaned later are still stopped."""
        for proc in _owned_procs({p.pid for p in self.procs.values()}, self.conf_path, self.slurmd_log):
            self.seen.setdefault(proc.pid, proc)

    def stop(self, grace_s: float = 15.0) -> None:
        self.remember()
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait(timeout=10)
        # Whatever the daemons left behind in their sessions (a slurmstepd, a job's tasks): TERM, then KILL.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            self.remember()
            left = [p for p in self.seen.values() if _alive(p)]
            if not left:
                break
            for proc in left:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(sig)
            psutil.wait_procs(left, timeout=5)


def _wait(what: str, ready: Callable[[], bool], timeout_s: float, launcher: _Launcher,
          logs: Callable[[], str]) -> None:
    """Poll `ready()` until true; fail early if a daemon died, or after timeout_s, with every daemon's log tail."""
    deadline = time.monotonic() + timeout_s
    while True:
        launcher.check_running(logs())
        if ready():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"SLURM test cluster: {what} not ready after {timeout_s:.0f}s\n{logs()}")
        time.sleep(0.25)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((HOST, port)) == 0


def _quiet_ok(cmd: list[str], env: dict[str, str], timeout: float = 15.0) -> bool:
    try:
        return subprocess.run(cmd, env=env, capture_output=True, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _slurm_conf(d: dict[str, Path], ports: dict[str, int], cpus: int, memory_mb: int, bind_loopback: bool,
                munge_socket: Path) -> str:
    comm = "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny" if bind_loopback else ""
    return textwrap.dedent(f"""\
        # Written by tests/clusters/slurm.py for a private test cluster; see that module.
        ClusterName={CLUSTER}
        SlurmctldHost={NODE}({HOST})
        SlurmctldPort={ports["slurmctld"]}
        SlurmdPort={ports["slurmd"]}
        {comm}
        AuthType=auth/munge
        CredType=cred/munge
        AuthInfo=socket={munge_socket}
        SlurmUser=root
        SlurmdUser=root
        StateSaveLocation={d["state"]}
        SlurmdSpoolDir={d["spool"]}/%n
        SlurmctldPidFile={d["run"]}/slurmctld.pid
        SlurmdPidFile={d["run"]}/slurmd-%n.pid
        SlurmctldLogFile={d["log"]}/slurmctld.log
        SlurmdLogFile={d["log"]}/slurmd-%n.log
        SlurmctldDebug=info
        SlurmdDebug=info
        PlugStackConfig={d["etc"]}/plugstack.conf
        # No systemd or cgroups in a container: track job processes through /proc, do no task binding.
        ProctrackType=proctrack/linuxproc
        TaskPlugin=task/none
        JobAcctGatherType=jobacct_gather/linux
        JobAcctGatherFrequency=30
        MpiDefault=none
        SwitchType=switch/none
        SchedulerType=sched/backfill
        SelectType=select/cons_tres
        SelectTypeParameters=CR_Core_Memory
        DefMemPerCPU=512
        # The node's CPUs/RealMemory come from this file, not from probing the machine.
        SlurmdParameters=config_overrides
        ReturnToService=2
        MailProg=/bin/true
        AccountingStorageType=accounting_storage/slurmdbd
        AccountingStorageHost={NODE}
        AccountingStoragePort={ports["slurmdbd"]}
        # For slurmdbd connections MUNGE's socket comes from here, not from AuthInfo.
        AccountingStoragePass={munge_socket}
        JobCompType=jobcomp/none
        # Quick teardown and prompt accounting in tests.
        KillWait=5
        MinJobAge=60
        InactiveLimit=0
        NodeName={NODE} NodeAddr={HOST} NodeHostname={NODE} CPUs={cpus} Sockets=1 CoresPerSocket={cpus} \
ThreadsPerCore=1 RealMemory={memory_mb} State=UNKNOWN
        PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
        """)


def _slurmdbd_conf(d: dict[str, Path], ports: dict[str, int], db_pass: str, bind_loopback: bool,
                   munge_socket: Path) -> str:
    comm = "CommunicationParameters=NoInAddrAny" if bind_loopback else ""
    return textwrap.dedent(f"""\
        # Written by tests/clusters/slurm.py for a private test cluster; see that module.
        AuthType=auth/munge
        AuthInfo=socket={munge_socket}
        DbdHost={NODE}
        DbdAddr={HOST}
        DbdPort={ports["slurmdbd"]}
        {comm}
        SlurmUser=root
        LogFile={d["log"]}/slurmdbd.log
        PidFile={d["run"]}/slurmdbd.pid
        DebugLevel=info
        StorageType=accounting_storage/mysql
        # An IP, not "localhost", so the MySQL client uses TCP to our port and not the system's default socket.
        StorageHost={HOST}
        StoragePort={ports["mariadb"]}
        StorageUser={DB_USER}
        StoragePass={db_pass}
        StorageLoc={DB_NAME}
        """)


def _start_munge(launcher: _Launcher, d: dict[str, Path], socket_path: Path) -> None:
    key = d["munge"] / "munge.key"
    # munged insists on an owner-only key file; any 1 KiB of random bytes is a valid key.
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(1024))
    launcher.start("munged", [
        _which("munged"), "--foreground", "--force", f"--socket={socket_path}", f"--key-file={key}",
        f"--pid-file={d['run']}/munged.pid",
        f"--seed-file={d['munge']}/munged.seed", "--num-threads=2",
    ])


def _mariadb_args(d: dict[str, Path], port: int, socket_path: Path) -> list[str]:
    # A throwaway database: small buffers, no durability, no native AIO (not in every container's kernel).
    return [
        "--no-defaults", "--user=root", f"--datadir={d['mariadb']}", f"--socket={socket_path}", f"--port={port}",
        f"--bind-address={HOST}", "--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=64M",
        "--innodb-use-native-aio=0", "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
        "--innodb-lock-wait-timeout=900", "--skip-performance-schema",
    ]


def _start_mariadb(launcher: _Launcher, d: dict[str, Path], port: int, socket_path: Path, db_pass: str) -> None:
    # The slurmdbd account and database are created while bootstrapping the datadir (no client round trip).
    init_sql = d["etc"] / "init.sql"
    init_sql.write_text(
        # Bootstrap runs without grant tables; FLUSH PRIVILEGES loads them so CREATE USER works.
        f"FLUSH PRIVILEGES;\nCREATE DATABASE {DB_NAME};\n"
        + "".join(f"CREATE USER '{DB_USER}'@'{host}' IDENTIFIED BY '{db_pass}';\n"
                  f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'{host}';\n" for host in ("localhost", HOST))
    )
    init_sql.chmod(0o600)
    install_log = d["log"] / "mariadb-install-db.log"
    with open(install_log, "wb") as log:
        rc = subprocess.run(
            [shutil.which("mariadb-install-db") or "mariadb-install-db", "--auth-root-authentication-method=socket",
             "--skip-test-db", f"--extra-file={init_sql}", *_mariadb_args(d, port, socket_path)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=120, start_new_session=True,
        ).returncode
    if rc != 0:
        raise RuntimeError(f"mariadb-install-db failed ({rc}):\n{install_log.read_text(errors='replace')[-4000:]}")
    launcher.start("mariadbd", [
        _which("mariadbd"), *_mariadb_args(d, port, socket_path), f"--pid-file={d['run']}/mariadbd.pid",
        f"--log-error={d['log']}/mariadbd.log",
    ])


@contextlib.contextmanager
def local_slurm(workdir: Path, cpus: int = 2, memory_mb: int = 8192,
                start_timeout_s: float = 120.0) -> Iterator[SlurmCluster]:
    """Start munged, MariaDB, slurmdbd, slurmctld and slurmd under `workdir`; yield the cluster; stop them all.

    Raises SlurmNotInstalledError when the Debian packages are missing, TimeoutError (with each daemon's log
    tail) when the node is not idle within start_timeout_s. Whatever was started is stopped in every case.
    """
    _check_installed()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / "etc").exists():
        raise FileExistsError(f"{workdir} already holds a SLURM test cluster; give each cluster a fresh directory")
    short_dir = Path(tempfile.mkdtemp(prefix="slurm-")) if len(str(workdir)) > MAX_SOCKET_DIR_LEN else None
    launcher: _Launcher | None = None
    try:
        d = {name: workdir / name for name in ("etc", "munge", "mariadb", "state", "log", "run")}
        d["spool"] = (short_dir or workdir) / "spool"
        for path in d.values():
            path.mkdir(mode=0o700)
        (d["spool"] / NODE).mkdir()  # SlurmdSpoolDir=<spool>/%n; slurmd complains before creating it itself
        # munged wants its socket's dir not writable by others.
        sock_dir = (short_dir or workdir) / "sock"
        sock_dir.mkdir()
        sock_dir.chmod(0o755)  # explicit: mkdir's mode is filtered by the umask
        munge_socket = sock_dir / "munge.socket"

        ports = dict(zip(("mariadb", "slurmdbd", "slurmctld", "slurmd"), _free_ports(4), strict=True))
        # Slurm binds to 0.0.0.0 unless NoInAddrAny, which binds to the address gethostname() resolves to. Where
        # that is not loopback, the SLURM daemons (and so the jobs) get a UTS namespace whose hostname is localhost.
        uts_prefix: list[str] = []
        bind_loopback = _hostname_is_loopback()
        if not bind_loopback and _uts_namespace_works():
            uts_prefix = ["unshare", "--uts", "sh", "-c", f'hostname {NODE} && exec "$0" "$@"']
            bind_loopback = True
        if not bind_loopback:
            warnings.warn("SLURM test cluster: hostname is not loopback and no UTS namespace; slurm daemons bind "
                          "0.0.0.0 (ports are still private to this cluster)", stacklevel=3)

        db_pass = secrets.token_hex(12)
        conf_path = d["etc"] / "slurm.conf"
        conf_path.write_text(_slurm_conf(d, ports, cpus, memory_mb, bind_loopback, munge_socket))
        (d["etc"] / "plugstack.conf").write_text("")  # no SPANK plugins (the default would read /etc/slurm)
        dbd_conf = d["etc"] / "slurmdbd.conf"
        # slurmdbd refuses a config others can read (it holds the DB password); create it 600 before writing.
        dbd_conf.touch(mode=0o600)
        dbd_conf.write_text(_slurmdbd_conf(d, ports, db_pass, bind_loopback, munge_socket))

        env = {"SLURM_CONF": str(conf_path)}
        daemon_env = {**os.environ, **env}
        for key in [k for k in daemon_env if k.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_"))]:
            if key != "SLURM_CONF":  # started from inside a real SLURM job: keep that job's settings out
                del daemon_env[key]
        logs = {
            "munged": d["log"] / "munged.stdout",  # in the foreground munged logs to stderr
            "mariadbd": d["log"] / "mariadbd.log",
            "slurmdbd": d["log"] / "slurmdbd.log",
            "slurmctld": d["log"] / "slurmctld.log",
            "slurmd": d["log"] / f"slurmd-{NODE}.log",
        }
        cluster = SlurmCluster(workdir=workdir, conf_path=conf_path, env=env, partition=PARTITION,
                               cluster_name=CLUSTER, node=NODE, memory_mb=memory_mb, cpus=cpus, ports=ports, logs=logs)
        launcher = _Launcher(daemon_env, d["log"], uts_prefix, conf_path, logs["slurmd"])

        def all_logs() -> str:
            stdouts = "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-1500:]}"
                                for p in sorted(d["log"].glob("*.stdout")) if p.stat().st_size)
            return cluster.log_tails() + ("\n" + stdouts if stdouts else "")

        _start_munge(launcher, d, munge_socket)
        _wait("munged", lambda: munge_socket.exists() and _munge_ok(munge_socket), 20, launcher, all_logs)
        _start_mariadb(launcher, d, ports["mariadb"], sock_dir / "mariadb.sock", db_pass)
        _wait("MariaDB", lambda: _port_open(ports["mariadb"]), 60, launcher, all_logs)

        launcher.start("slurmdbd", [_which("slurmdbd"), "-D"], uts=True)
        _wait("slurmdbd", lambda: _port_open(ports["slurmdbd"]), start_timeout_s, launcher, all_logs)
        # slurmctld would register the cluster itself once connected; adding it first avoids that startup race.
        sacctmgr = [_which("sacctmgr"), "-i"]
        _wait("cluster registration",
              lambda: _quiet_ok([*sacctmgr, "add", "cluster", CLUSTER], daemon_env)
              or CLUSTER in _stdout([*sacctmgr, "-n", "-P", "list", "cluster", "format=cluster"], daemon_env),
              30, launcher, all_logs)

        launcher.start("slurmctld", [_which("slurmctld"), "-D", "-f", str(conf_path)], uts=True)
        _wait("slurmctld", lambda: _quiet_ok([_which("scontrol"), "ping"], daemon_env), 30, launcher, all_logs)
        launcher.start("slurmd", [_which("slurmd"), "-D", "-N", NODE, "-f", str(conf_path)], uts=True)
        _wait("node idle", lambda: _stdout([_which("sinfo"), "-h", "-N", "-o", "%T"], daemon_env).strip() == "idle",
              start_timeout_s, launcher, all_logs)
        cluster.pids = {name: proc.pid for name, proc in launcher.procs.items()}
        launcher.remember()
        yield cluster
    finally:
        try:
            if launcher is not None and "slurmctld" in launcher.procs and launcher.procs["slurmctld"].poll() is None:
                _cancel_jobs(launcher.env)
        finally:
            if launcher is not None:
                launcher.stop()
            if short_dir is not None:
                shutil.rmtree(short_dir, ignore_errors=True)


def _stdout(cmd: list[str], env: dict[str, str], timeout: float = 15.0) -> str:
    try:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired:
        return ""


def _munge_ok(socket_path: Path) -> bool:
    """A credential round trip through our munged."""
    try:
        cred = subprocess.run([_which("munge"), "-n", f"--socket={socket_path}"], capture_output=True, timeout=5)
        if cred.returncode != 0:
            return False
        return subprocess.run([_which("unmunge"), f"--socket={socket_path}"], input=cred.stdout,
                              capture_output=True, timeout=5).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _cancel_jobs(env: dict[str, str], timeout_s: float = 20.0) -> None:
    """Cancel this cluster's jobs and give slurmd a moment to reap them, so no job outlives the cluster."""
    _quiet_ok([_which("scancel"), "--full", "--partition", PARTITION], env)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _stdout([_which("squeue"), "-h", "-o", "%i"], env).strip():
        time.sleep(0.5)
