"""One full update (world model + actor-critic) of pvm-mbrl beside other PyTorch DreamerV3s, at matched sizes.

    python benchmarks/peers.py --peer dreamerv3-torch=../dreamerv3-torch --peer r2dreamer=../r2dreamer \\
        --peer-python ../peers-venv/bin/python
    python benchmarks/peers.py --sizes cpu --batches 16x16 --precisions fp32 best --peer dreamerv3-torch=PATH
    python benchmarks/peers.py --device cuda --sizes size12m size200m --batches 16x64 --peer ... --peer ...

Sides: pvm-mbrl (``Agent.train_step`` on the batch ``benchmarks/update_speed.py`` builds), NM512/dreamerv3-torch
and NM512/r2dreamer. Each measurement is a fresh process that builds one side's model, runs --warmup updates,
then --updates timed ones on random data of the batch's shape (64^2 images by default, 6 continuous actions), and
prints JSON; the sides alternate between rounds (A B C, C B A, ...). Per configuration the table gives each side's
min and median ms over all its timed updates, and the peer / ours ratios (above 1: ours is faster).

Sizes (--sizes): a pvm-mbrl model preset's size numbers (``cpu``, ``size12m``, ... from
``src/pvm_mbrl/conf/model/``), given to every peer through its own config (deter, hidden, stoch, classes,
CNN depth, MLP units, GRU blocks where it has them); ``default``: each peer's own shipped default against our
``size12m``. Precisions (--precisions): ``fp32``, and ``best``, the precision each side offers for speed on a
CPU: ours bf16 autocast; dreamerv3-torch fp32 (its ``precision=16`` uses ``torch.cuda.amp``, which does nothing
on a CPU); r2dreamer bf16 autocast in place of the fp16 autocast it ships (``--r2dreamer-best fp16`` keeps
that). Its ``fp32`` turns autocast off. On a CPU without bf16 instructions (AVX512-BF16, AMX) bf16 is slower
than fp32 (``update_speed.py`` prints both matmul rates). On CUDA (``--device cuda``) `best` is what each side
ships for a GPU: ours bf16 autocast, dreamerv3-torch ``precision=16`` (fp16 ``torch.cuda.amp`` with a
GradScaler), r2dreamer fp16 autocast with its GradScaler (``--r2dreamer-best bf16`` swaps in bf16); its `fp32`
keeps the TF32 matmuls it ships (``set_float32_matmul_precision("high")``), ours and dreamerv3-torch's fp32 do not
use TF32. Times on CUDA are taken after ``torch.cuda.synchronize()``, and the peak column is the GPU's
``max_memory_allocated``. No side compiles (both peers ship ``compile: True``;
it is set False here) unless ``--compile`` is given: then every side compiles as it ships -- ours with
``compile=default``, r2dreamer its update with ``torch.compile(mode="reduce-overhead")`` (CUDA graphs on CUDA,
inductor alone on a CPU), dreamerv3-torch wraps its world model and behaviour in ``torch.compile``, which compiles
their ``forward``; its update calls ``_train``, so it stays eager. The warm-up updates take the compile time.

Memory allocator: pvm-mbrl's training calls ``pvm_mbrl.training.allocator.retain_freed_memory()`` (two
``mallopt`` calls that keep freed memory in the process); our side always runs with it, as training does. The
peers run as shipped (glibc's default) unless ``--peer-malloc retain`` gives them the same calls, or
``--peer-malloc both`` measures each peer both ways, as two sides.

Getting the peers (not part of pvm-mbrl; nothing is downloaded at run time):

    git clone https://github.com/NM512/dreamerv3-torch && git -C dreamerv3-torch checkout 6ef8646
    git clone https://github.com/NM512/r2dreamer && git -C r2dreamer checkout 546e4fa

Their extra Python packages, best in a separate virtual env with pvm-mbrl's torch (pass it as --peer-python;
the default is this interpreter):

    python -m venv peers-venv && peers-venv/bin/pip install torch==2.13.0 numpy==2.2.6 tensorboard==2.20.0 \\
        ruamel.yaml==0.17.4 hydra-core==1.3.2 tensordict==0.15.3

(dreamerv3-torch: ruamel.yaml for its configs.yaml, tensorboard for its tools.py; r2dreamer: hydra-core for
its configs, tensordict for its batches.) A peer without --peer PATH is skipped with a message.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OURS = "pvm-mbrl"
PEERS = {
    "dreamerv3-torch": {"url": "https://github.com/NM512/dreamerv3-torch", "commit": "6ef8646"},
    "r2dreamer": {"url": "https://github.com/NM512/r2dreamer", "commit": "546e4fa"},
}
# What each peer's update does differently from ours; printed with every table.
DIFFERENCES = {
    "dreamerv3-torch": (
        "its update is the 2023 algorithm, so the work differs: three optimisers (world model, actor, critic; "
        "Adam with gradient clipping), the actor's gradient through the imagined dynamics (imag_gradient="
        "dynamics: imagination runs with gradients), no replay-value loss; one un-blocked GRU; reward, continue, "
        "actor and critic MLPs of 2 layers (ours 1, 1, 3, 3); its CNN is always 4x4 stride-2 convolutions "
        "(our `cpu` preset's; `size12m` uses 5x5 conv + max-pool); fp32 is its only CPU precision"),
    "r2dreamer": (
        "matched rows run its DreamerV3 reproduction (model.rep_loss=dreamer): one LaProp optimiser with AGC, "
        "REINFORCE actor, replay-value loss, block GRU -- the same algorithm as ours; it differs in: its RSSM "
        "starts each batch from a latent stored in replay (zeros here; ours too where the notes say "
        "replay_context=1), its CNN encoder and decoder are always "
        "5x5 conv + max-pool / up-sampling (our `cpu` preset uses 4x4 stride-2 convolutions, several times "
        "cheaper), it ships fp16 autocast with a GradScaler (the scaler disables itself without CUDA); its own "
        "default (`default` rows: size12M, rep_loss=r2dreamer) has no decoder (a Barlow-twins loss instead), "
        "a different algorithm with less work"),
}
RESULT_MARK = "PEERS_RESULT "
ACTION_DIM = 6


@dataclass(frozen=True)
class Side:
    """One thing timed: a code base, with or without the allocator setting."""

    name: str  # OURS or a key of PEERS
    retain: bool  # apply retain_freed_memory()'s mallopt calls before building

    @property
    def label(self) -> str:
        if self.name == OURS or not self.retain:
            return self.name
        return f"{self.name}+retain"


# ---------------------------------------------------------------------------------------------- children
def apply_retain() -> bool:
    """pvm-mbrl's allocator setting, loaded from its file so a peer's interpreter needs no pvm-mbrl install."""
    path = REPO / "src" / "pvm_mbrl" / "training" / "allocator.py"
    spec = importlib.util.spec_from_file_location("_pvm_mbrl_allocator", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.retain_freed_memory()


def random_arrays(batch: int, length: int, size: int) -> dict:
    """Random replay-like numpy arrays for the peers: uint8 images, actions in [-1, 1], rewards, flags -- the
    arrays ``update_speed.synthetic_batch`` makes for our side, made here because a peer's interpreter may lack
    pvm-mbrl, which ``update_speed`` imports."""
    import numpy as np

    rng = np.random.default_rng(0)
    is_first = np.zeros((batch, length), bool)
    is_first[:, 0] = True
    return {
        "image": rng.integers(0, 255, (batch, length, size, size, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (batch, length, ACTION_DIM)).astype(np.float32),
        "reward": rng.normal(size=(batch, length)).astype(np.float32),
        "is_first": is_first, "is_last": np.zeros((batch, length), bool),
        "is_terminal": np.zeros((batch, length), bool),
    }


def build_ours(spec: dict) -> tuple:
    """pvm-mbrl's agent through its public API: (its optimiser, a function doing one ``Agent.train_step``,
    notes). Every builder returns that triple."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from update_speed import build_agent, train_step_batch

    precision = "bf16" if spec["precision"] == "best" else "fp32"
    overrides = [*spec["overrides"], *(["compile=default"] if spec["compile"] else [])]
    agent = build_agent(spec["preset"], spec["image_size"], precision, spec["batch"], spec["length"], spec["device"],
                        overrides)
    data = train_step_batch(agent, spec["batch"], spec["length"], spec["image_size"])
    notes = f"{precision}{' autocast' if precision == 'bf16' else ''}"
    for setting in ("replay_context", "compile"):  # settings that change the update's work, where they exist
        if agent.cfg.get(setting) is not None:
            notes += f", {setting}={agent.cfg.get(setting)}"
    return [agent.optimizer], lambda: agent.train_step(data), notes


def build_dreamerv3_torch(spec: dict) -> tuple:
    """dreamerv3-torch's WorldModel + ImagBehavior from its configs.yaml (defaults + dmc_vision), as its
    ``dreamer.py`` composes them; one update is ``Dreamer._train``: the world model's then the behaviour's."""
    path = spec["path"]
    sys.path.insert(0, path)
    import argparse as _argparse
    import types

    import models
    import ruamel.yaml as yaml
    import tools
    import torch

    configs = yaml.safe_load((Path(path) / "configs.yaml").read_text())

    def recursive_update(base: dict, update: dict) -> None:  # as dreamer.py's __main__
        for key, value in update.items():
            if isinstance(value, dict) and key in base:
                recursive_update(base[key], value)
            else:
                base[key] = value

    defaults: dict = {}
    for name in ("defaults", "dmc_vision"):
        recursive_update(defaults, configs[name])
    size = spec["size"]
    amp = spec["device"] == "cuda" and spec["precision"] == "best"  # its precision=16: fp16 torch.cuda.amp
    changes = {"device": spec["device"], "compile": spec["compile"], "batch_size": spec["batch"],
               "batch_length": spec["length"], "size": [spec["image_size"]] * 2, "precision": 16 if amp else 32}
    if size is not None:
        changes.update({"dyn_deter": size["deter"], "dyn_hidden": size["hidden"], "dyn_stoch": size["stoch"],
                        "dyn_discrete": size["classes"], "units": size["units"]})
        changes["encoder"] = {"cnn_depth": size["depth"]}
        changes["decoder"] = {"cnn_depth": size["depth"]}
    recursive_update(defaults, changes)
    config = _argparse.Namespace(**{k: tools.args_type(v)(v) for k, v in defaults.items()})
    config.num_actions = ACTION_DIM
    shape = (spec["image_size"], spec["image_size"], 3)
    spaces = {"image": types.SimpleNamespace(shape=shape),
              **{k: types.SimpleNamespace(shape=()) for k in ("is_first", "is_last", "is_terminal")}}
    obs_space = types.SimpleNamespace(spaces=spaces)
    act_space = types.SimpleNamespace(shape=(ACTION_DIM,), low=-1.0, high=1.0)
    torch.manual_seed(0)
    wm = models.WorldModel(obs_space, act_space, 0, config).to(spec["device"])
    behavior = models.ImagBehavior(config, wm).to(spec["device"])
    if config.compile:  # as its Dreamer.__init__: the wrappers compile forward, which _train does not call
        wm, behavior = torch.compile(wm), torch.compile(behavior)
    arrays = random_arrays(spec["batch"], spec["length"], spec["image_size"])
    arrays["discount"] = 1.0 - arrays["is_terminal"].astype("float32")  # as its episodes store it

    def reward(f, s, a):  # noqa: ARG001 -- Dreamer._train's objective
        return wm.heads["reward"](wm.dynamics.get_feat(s)).mode()

    def update() -> None:  # Dreamer._train without its metric bookkeeping
        post, _, _ = wm._train(arrays)
        behavior._train(post, reward)

    optimizers = [wm._model_opt._opt, behavior._actor_opt._opt, behavior._value_opt._opt]
    compiled = "compile on (forward only: the update stays eager)" if config.compile else "compile off"
    precision = "fp16 amp (precision=16, as shipped)" if amp else (
        "fp32" if spec["device"] == "cuda" else "fp32 (its only CPU precision)")
    return optimizers, update, f"{precision}, {compiled}"


def build_r2dreamer(spec: dict) -> tuple:
    """r2dreamer's ``Dreamer`` from its Hydra configs; one update is ``Dreamer.update(replay)`` with a replay
    stand-in that hands out the random batch and the initial latent, and ignores the latents written back."""
    path = spec["path"]
    sys.path.insert(0, path)
    import types

    import torch
    from hydra import compose, initialize_config_dir
    from tensordict import TensorDict

    import dreamer

    torch.set_float32_matmul_precision("high")  # as its train.py
    size = spec["size"]
    overrides = [f"device={spec['device']}", f"model.compile={spec['compile']}", f"batch_size={spec['batch']}",
                 f"batch_length={spec['length']}", f"env.size=[{spec['image_size']},{spec['image_size']}]"]
    if size is not None:
        overrides += ["model.rep_loss=dreamer", f"model.deter={size['deter']}", f"model.hidden={size['hidden']}",
                      f"model.rssm.stoch={size['stoch']}", f"model.discrete={size['classes']}",
                      f"model.depth={size['depth']}", f"model.units={size['units']}",
                      f"model.rssm.blocks={size['blocks']}"]
    with initialize_config_dir(config_dir=str(Path(path) / "configs"), version_base=None):
        config = compose(config_name="configs", overrides=overrides)
    precision = spec["precision"]
    autocast_dtype = {"fp32": None, "best": spec["r2dreamer_best"]}[precision]
    if autocast_dtype is None:
        dreamer.autocast = lambda device_type, dtype: contextlib.nullcontext()  # noqa: ARG005
        notes = "fp32 (its fp16 autocast turned off)"
    elif autocast_dtype == "bf16":
        dreamer.autocast = lambda device_type, dtype: torch.autocast(device_type, dtype=torch.bfloat16)  # noqa: ARG005
        notes = "bf16 autocast (in place of its fp16)"
    else:
        notes = "fp16 autocast (as shipped)"
    notes += f", rep_loss={config.model.rep_loss}, compile {'on' if config.model.compile else 'off'}"
    shape = (spec["image_size"], spec["image_size"], 3)
    spaces = {"image": types.SimpleNamespace(shape=shape),
              **{k: types.SimpleNamespace(shape=(1,)) for k in ("is_first", "is_last", "is_terminal")}}
    obs_space = types.SimpleNamespace(spaces=spaces)
    act_space = types.SimpleNamespace(shape=(ACTION_DIM,))
    torch.manual_seed(0)
    agent = dreamer.Dreamer(config.model, obs_space, act_space).to(spec["device"])
    arrays = random_arrays(spec["batch"], spec["length"], spec["image_size"])
    batch_shape = (spec["batch"], spec["length"])
    data = TensorDict({k: torch.as_tensor(v if v.ndim > 2 else v[..., None]) for k, v in arrays.items()},
                      batch_size=batch_shape, device=spec["device"])  # its replay stores on the device
    initial = agent.get_initial_state(spec["batch"])
    # Dreamer.preprocess converts the images in place, so every update gets its own copy, made beforehand.
    copies = [data.clone() for _ in range(spec["warmup"] + spec["updates"] + 1)]

    class Replay:
        def sample(self) -> tuple:
            return copies.pop(), None, (initial["stoch"], initial["deter"])

        def update(self, index, stoch, deter) -> None:  # the latents its buffer would store
            pass

    replay = Replay()
    return [agent._optimizer], lambda: agent.update(replay), notes


BUILDERS = {OURS: build_ours, "dreamerv3-torch": build_dreamerv3_torch, "r2dreamer": build_r2dreamer}


def child(spec: dict) -> dict:
    """Build one side's model in this (fresh) process, run warm-up and timed updates; the result as a dict."""
    import torch

    torch.set_num_threads(spec["threads"])
    cuda = spec["device"] == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    retained = apply_retain() if spec["retain"] else False
    with contextlib.redirect_stdout(sys.stderr):  # the peers print while building; stdout carries the result
        optimizers, update, notes = BUILDERS[spec["side"]](spec)
        for _ in range(spec["warmup"]):
            update()
        times = []
        for _ in range(spec["updates"]):
            sync()
            start = time.perf_counter()
            update()
            sync()
            times.append(1000 * (time.perf_counter() - start))
    trained = {id(p): p.numel() for opt in optimizers for group in opt.param_groups for p in group["params"]}
    params = sum(trained.values()) / 1e6  # what the optimisers update: no frozen copies or slow critics
    return {"side": spec["side"], "times_ms": times, "params_m": params, "notes": notes, "retained": retained,
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# ---------------------------------------------------------------------------------------------- parent
def model_sizes(preset: str, overrides: list[str]) -> dict:
    """The size numbers of one of our model presets (after ``--override``), the ones given to the peers."""
    from pvm_mbrl.training.config import compose_config

    model = compose_config([f"model={preset}", *overrides]).model
    return {k: int(model[k]) for k in ("deter", "hidden", "stoch", "classes", "depth", "units", "blocks")} | {
        "cnn_downsample": str(model.get("cnn_downsample", "pool"))}


def run_child(python: str, spec: dict, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.run([python, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                          capture_output=True, text=True, env=env, cwd=str(REPO))
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
    raise RuntimeError(f"{spec['side']} ({spec['size_name']}, {spec['batch']}x{spec['length']}, "
                       f"{spec['precision']}) failed with exit code {proc.returncode}:\n{tail}")


def gpu_name() -> str:
    """The CUDA device's name, asked in a child so the parent never initialises CUDA (children get it whole)."""
    proc = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.get_device_name(0))"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"peers.py: --device cuda, but torch cannot use a CUDA device here: {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip()


def parse_peer(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or name not in PEERS:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH with NAME one of {', '.join(PEERS)}, got {text!r}")
    if not Path(path).expanduser().is_dir():
        raise argparse.ArgumentTypeError(f"{name}: {path} is not a directory (a checkout of {PEERS[name]['url']})")
    return name, str(Path(path).expanduser().resolve())


def parse_batch(text: str) -> tuple[int, int]:
    try:
        batch, length = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected BATCHxLENGTH such as 16x64, got {text!r}") from None
    if batch < 1 or length < 2:
        raise argparse.ArgumentTypeError(f"batch must be >= 1 and length >= 2, got {text!r}")
    return batch, length


def checkout_commit(path: str) -> str:
    proc = subprocess.run(["git", "-C", path, "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown commit (not a git checkout)"


def ratio(peer: float, ours: float) -> str:
    return f"{peer / ours:.2f}x"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer", action="append", type=parse_peer, default=[], metavar="NAME=PATH",
                        help=f"a peer's checkout; NAME: {', '.join(PEERS)} (repeat for each)")
    parser.add_argument("--peer-python", default=sys.executable,
                        help="interpreter for the peers' processes (a venv with their packages; default: this one)")
    parser.add_argument("--sizes", nargs="+", default=["cpu", "size12m", "default"],
                        help="our model presets whose size numbers every side gets; `default`: each peer's own")
    parser.add_argument("--batches", nargs="+", type=parse_batch, default=[(16, 16), (16, 64)],
                        metavar="BxT", help="batch shapes, batch x length (default: 16x16 16x64)")
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "best"), default=["fp32", "best"])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where every side's model and batch live (cuda: times after synchronize)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in every process")
    parser.add_argument("--warmup", type=int, default=2, help="untimed updates per process")
    parser.add_argument("--updates", type=int, default=5, help="timed updates per process")
    parser.add_argument("--rounds", type=int, default=2,
                        help="fresh processes per side and configuration; the order reverses every round")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--peer-malloc", choices=("shipped", "retain", "both"), default="shipped",
                        help="peers with glibc's default allocator (shipped), with pvm-mbrl's retain_freed_memory "
                             "mallopt calls (retain), or measured both ways (both)")
    parser.add_argument("--r2dreamer-best", choices=("bf16", "fp16"),
                        help="r2dreamer's autocast for `best` (it ships fp16; default: bf16 on a CPU, fp16 on CUDA)")
    parser.add_argument("--compile", action="store_true",
                        help="every side compiles as it ships (ours compile=default); warm-ups take the compile")
    parser.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for our side (e.g. model.deter=64); size numbers reach the peers")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        print(RESULT_MARK + json.dumps(child(json.loads(args.child))), flush=True)
        return 0
    peers = dict(args.peer)
    r2dreamer_best = args.r2dreamer_best or ("bf16" if args.device == "cpu" else "fp16")
    for size in args.sizes:
        if size != "default":
            model_sizes(size, args.override)  # fail now on an unknown preset, not after minutes of timing

    where = f"CPU, {args.threads} threads" if args.device == "cpu" else f"CUDA ({gpu_name()}), peak = GPU memory"
    print(f"One full update (world model + actor-critic), ms; {where}; every process fresh: "
          f"{args.warmup} warm-up + {args.updates} timed updates; {args.rounds} round(s), sides alternating; "
          f"random data, {args.image_size}^2 images, {ACTION_DIM} continuous actions")
    print(f"  {OURS}: Agent.train_step (the batch benchmarks/update_speed.py builds); fp32, best = bf16 autocast; "
          f"allocator: retain_freed_memory (as training)")
    sides = [Side(OURS, True)]
    for name, info in PEERS.items():
        if name not in peers:
            print(f"  {name}: skipped -- no --peer {name}=PATH. Get it with: git clone {info['url']} && "
                  f"git -C {name} checkout {info['commit']}  (then see --help for its packages)")
            continue
        commit = checkout_commit(peers[name])
        pinned = "" if commit.startswith(info["commit"]) else f" (this benchmark was written at {info['commit']})"
        print(f"  {name}: {peers[name]} at {commit}{pinned}; interpreter {args.peer_python}")
        print(f"    what differs: {DIFFERENCES[name]}")
        malloc = {"shipped": [False], "retain": [True], "both": [False, True]}[args.peer_malloc]
        sides += [Side(name, retain) for retain in malloc]
    if args.peer_malloc != "shipped" and len(sides) > 1:
        print("  +retain: the peer given the same two mallopt calls as pvm-mbrl's training (equal footing)")

    header = (f"| {'size numbers':<26} | {'batch':>5} | {'precision':<9} | {'side':<22} | {'trained':>7} | "
              f"{'min ms':>8} | {'median ms':>9} | {'runs':>4} | {'peak MiB':>8} | {'peer/ours min':>13} | "
              f"{'peer/ours median':>16} | notes")
    print()
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|---|")
    failures = 0
    cache: dict[tuple, list[dict]] = {}
    for size_name in args.sizes:
        preset = "size12m" if size_name == "default" else size_name
        size = None if size_name == "default" else model_sizes(size_name, args.override)
        label = f"{size_name}'s" if size else "peer default; ours size12m"
        for batch, length in args.batches:
            for precision in args.precisions:
                def key(side: Side, config: tuple = (size_name, batch, length, precision)) -> tuple:
                    """Runs are shared where a side's precision is the same: dreamerv3-torch's `best` on a CPU
                    is fp32."""
                    same = side.name == "dreamerv3-torch" and args.device == "cpu"
                    effective = "fp32" if same else config[3]
                    return side, *config[:3], effective

                todo = [side for side in sides if key(side) not in cache]
                for side in todo:
                    cache[key(side)] = []
                for round_index in range(args.rounds):
                    for side in todo if round_index % 2 == 0 else todo[::-1]:
                        spec = {"side": side.name, "retain": side.retain, "preset": preset, "size": size,
                                "size_name": size_name, "batch": batch, "length": length, "precision": precision,
                                "image_size": args.image_size, "threads": args.threads, "warmup": args.warmup,
                                "updates": args.updates, "overrides": args.override, "compile": args.compile,
                                "path": peers.get(side.name), "r2dreamer_best": r2dreamer_best,
                                "device": args.device}
                        python = sys.executable if side.name == OURS else args.peer_python
                        try:
                            cache[key(side)].append(run_child(python, spec, args.threads))
                        except RuntimeError as error:
                            failures += 1
                            print(f"  ! {error}", flush=True)
                ours = cache[key(sides[0])]
                ours_times = [t for run in ours for t in run["times_ms"]]
                for side in sides:
                    runs = cache[key(side)]
                    times = [t for run in runs for t in run["times_ms"]]
                    if not times:
                        print(f"| {label:<26} | {batch:>2}x{length:<2} | {precision:<9} | {side.label:<22} | "
                              f"{'failed':>7} |")
                        continue
                    low, mid = min(times), statistics.median(times)
                    if side.name == OURS or not ours_times:
                        ratios = ("", "")
                    else:
                        ratios = (ratio(low, min(ours_times)), ratio(mid, statistics.median(ours_times)))
                    peak = max(run["peak_mib"] for run in runs)
                    print(f"| {label:<26} | {batch:>2}x{length:<2} | {precision:<9} | {side.label:<22} | "
                          f"{runs[0]['params_m']:>6.1f}M | {low:>8,.0f} | {mid:>9,.0f} | {len(runs):>4} | "
                          f"{peak:>8,.0f} | {ratios[0]:>13} | {ratios[1]:>16} | {runs[0]['notes']} |", flush=True)
    print()
    print("peer/ours above 1: pvm-mbrl's update is faster. min / median over every timed update of every process.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
