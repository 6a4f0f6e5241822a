"""Fixed-capacity sequence replay, persisted to the run directory in append-only chunk files.

Each environment writes its own stream (a ring of ``capacity // num_streams`` steps), so sampled chunks
are contiguous in time. Chunks may cross episode boundaries: ``is_first`` resets the RSSM inside a
sequence, as in DreamerV3. Finished steps are written as ``.npz`` chunk files (atomically, then never
changed), so saving replay with a checkpoint costs only the steps since the last save.

With ``online_length`` set, replay also keeps DreamerV3's online queue: every new, non-overlapping segment of
that many steps of a stream is queued when complete and trained on once, ahead of the uniform samples.
Training may write values back into sampled rows (:meth:`write`): DreamerV3's replay context stores each
step's posterior latent and refreshes it with the one computed in training.

``storage="disk"`` keeps the ring itself in memory-mapped files (``<directory>/ring/``), so a replay larger
than RAM (1M steps of ViT tokens) costs disk, with the OS page cache holding what sampling touches.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections import deque
from pathlib import Path

import numpy as np

from pvm_mbrl.atomic import atomic_write
from pvm_mbrl.errors import ReplayReadError
from pvm_mbrl.memory import memory_limit_bytes

CHUNK_PATTERN = re.compile(r"stream(\d+)_(\d+)_(\d+)\.npz$")
STORAGE_MODES = ("memory", "disk")


def close_abandoned_episodes(is_first: np.ndarray, is_last: np.ndarray) -> np.ndarray:
    """``is_last`` also set at every step followed by an ``is_first`` ``[B, T]``, as DreamerV3's replay does: an
    episode cut short (a resumed run starts a new one) must not have its return run on into the next."""
    next_is_first = np.zeros_like(is_first)
    next_is_first[:, :-1] = is_first[:, 1:]
    return is_last | next_is_first


def save_chunk(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read_chunk(path: Path) -> dict[str, np.ndarray]:
    """A chunk's arrays (never unpickled); ``ReplayReadError`` naming the file when it is truncated or corrupt."""
    try:
        with np.load(path, allow_pickle=False) as chunk:
            return {key: chunk[key] for key in chunk.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise ReplayReadError(
            f"replay chunk {path} is unreadable ({type(error).__name__}: {error}). The checkpoint counts its steps, "
            f"so this run cannot resume without it: restore the file from a backup, or train again in another "
            f"run_dir (`pvm-mbrl evaluate` still works on the checkpoint)") from error


def capacity_for_run(capacity: int, env_steps: int, action_repeat: int, num_streams: int) -> int:
    """The replay a run can fill: ``capacity``, or fewer where the run adds fewer steps (it then evicts nothing
    either way, so sampling is unchanged). Each of ``num_streams`` envs adds one agent step per
    ``action_repeat`` env steps, all streams at once, until ``env_steps`` is reached."""
    adds_per_stream = math.ceil(env_steps / (num_streams * action_repeat))
    return max(num_streams, min(capacity, num_streams * adds_per_stream))


def bytes_per_key(arrays: dict[str, np.ndarray], leading_axes: int) -> dict[str, int]:
    """Bytes one stored step takes per key, the first ``leading_axes`` axes (stream, row) not counted."""
    return {k: v.itemsize * int(np.prod(v.shape[leading_axes:])) for k, v in arrays.items()}


def check_fits_in_memory(step: dict[str, np.ndarray], capacity: int, memory_bytes: int) -> None:
    """Refuse a replay that cannot fit in RAM once full (a run would be killed when it got there), naming what
    takes the space and the settings that fix it; ``step`` holds one step per stream (leading axis)."""
    per_key = bytes_per_key(step, 1)
    per_step = sum(per_key.values())
    if per_step * capacity <= memory_bytes:
        return
    largest = max(per_key, key=per_key.get)
    raise MemoryError(
        f"replay would take {per_step * capacity / 2**30:,.1f} GiB when full ({per_step:,} bytes per step, "
        f"{per_key[largest]:,} of them '{largest}', x replay_capacity {capacity:,}), more than the "
        f"{memory_bytes / 2**30:,.1f} GiB of memory this process may use (RAM, or its cgroup's limit). Set "
        f"replay_capacity to at most {memory_bytes // per_step:,} (or fewer, to leave room for the rest), or "
        "replay_storage=disk to keep the ring in files.")


class ReplayBuffer:
    def __init__(self, capacity: int, num_streams: int = 1, directory: str | Path | None = None,
                 chunk_size: int = 1024, seed: int = 0, storage: str = "memory", online_length: int = 0):
        if capacity < num_streams:
            raise ValueError(f"replay capacity {capacity} must be >= the number of envs ({num_streams})")
        if storage not in STORAGE_MODES or (storage == "disk" and directory is None):
            raise ValueError(f"replay storage must be one of {', '.join(STORAGE_MODES)} ('disk' needs a directory), "
                             f"got {storage!r}")
        self.storage = storage
        self.num_streams, self.stream_capacity = num_streams, capacity // num_streams
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self.chunk_size = chunk_size
        self.rng = np.random.default_rng(seed)
        self.data: dict[str, np.ndarray] = {}
        self.totals = np.zeros(num_streams, np.int64)  # steps ever added per stream
        self.saved = np.zeros(num_streams, np.int64)  # steps per stream already in chunk files
        self.online_length = online_length
        self.online_queue: deque[tuple[int, int]] = deque()  # (stream, total at the segment's end), oldest first

    # ---------------------------------------------------------------- adding
    def _allocate(self, step: dict[str, np.ndarray]) -> None:
        shapes = {k: ((self.num_streams, self.stream_capacity, *v.shape[1:]), v.dtype) for k, v in step.items()}
        if self.storage == "disk":
            ring = self.directory / "ring"
            ring.mkdir(exist_ok=True)
            self.data = {k: np.lib.format.open_memmap(ring / f"{k}.npy", mode="w+", shape=shape, dtype=dtype)
                         for k, (shape, dtype) in shapes.items()}
        else:  # np.zeros maps pages lazily, so an unfilled large capacity costs no memory
            check_fits_in_memory(step, self.capacity, memory_limit_bytes())
            self.data = {k: np.zeros(shape, dtype) for k, (shape, dtype) in shapes.items()}

    def add(self, step: dict[str, np.ndarray]) -> None:
        """Append one step to every stream; each value has a leading axis of ``num_streams``."""
        if not self.data:
            self._allocate(step)
        if set(step) != set(self.data):
            raise KeyError(f"replay step keys {sorted(step)} differ from stored keys {sorted(self.data)}")
        rows = self.totals % self.stream_capacity
        streams = np.arange(self.num_streams)
        for key, value in step.items():
            self.data[key][streams, rows] = value
        self.totals += 1
        if self.online_length:
            # As DreamerV3's replay counts them: segments of steps 1..L, L+1..2L, ... (its first step never queued).
            complete = (self.totals > self.online_length) & ((self.totals - 1) % self.online_length == 0)
            for stream in np.flatnonzero(complete):
                self.online_queue.append((int(stream), int(self.totals[stream])))
        if self.directory is not None and (self.totals - self.saved).max() >= self.chunk_size:
            self.save()

    def __len__(self) -> int:
        return int(self._stored().sum())

    def _stored(self) -> np.ndarray:
        """Steps each stream's ring holds now."""
        return np.minimum(self.totals, self.stream_capacity)

    @property
    def capacity(self) -> int:
        """Steps the ring holds when full, all streams together."""
        return self.num_streams * self.stream_capacity

    @property
    def bytes_per_step(self) -> int:
        """Memory one stored step takes (all keys), for reporting and capacity planning."""
        return sum(bytes_per_key(self.data, 2).values())

    # ---------------------------------------------------------------- sampling
    def sample(self, batch_size: int, length: int) -> dict[str, np.ndarray]:
        """``batch_size`` contiguous chunks of ``length`` steps (see :meth:`sample_positions`)."""
        return self.gather(self.sample_positions(batch_size, length))

    def _starts_per_stream(self, length: int) -> np.ndarray:
        return np.maximum(self._stored() - length + 1, 0)

    def sequences(self, length: int) -> int:
        """How many sequences of ``length`` steps can be sampled (DreamerV3's ``len(replay)``: its items)."""
        return int(self._starts_per_stream(length).sum())

    def sample_positions(self, batch_size: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Where ``batch_size`` chunks of ``length`` steps lie: ``(stream [B], row [B, length])``.

        Queued online segments come first (when ``length`` is the online length); the rest are uniform over
        every start position of every stream.
        """
        stored = self._stored()
        starts_per_stream = self._starts_per_stream(length)
        if starts_per_stream.sum() == 0:
            raise ValueError(f"replay holds {len(self)} steps, fewer than one sequence of length {length}")
        ends = self._pop_online(batch_size) if length == self.online_length else []
        flat = self.rng.integers(0, starts_per_stream.sum(), batch_size - len(ends))
        stream = np.searchsorted(np.cumsum(starts_per_stream), flat, side="right")
        offset = flat - (np.cumsum(starts_per_stream) - starts_per_stream)[stream]
        first = self.totals[stream] - stored[stream] + offset  # total index of each chunk's first step
        if ends:
            online_stream, online_end = np.asarray(ends, np.int64).T
            stream, first = np.concatenate([online_stream, stream]), np.concatenate([online_end - length, first])
        rows = (first[:, None] + np.arange(length)) % self.stream_capacity
        return stream, rows

    def _pop_online(self, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` queued segments that are still whole in the ring, oldest first."""
        taken = []
        while self.online_queue and len(taken) < limit:
            stream, end = self.online_queue.popleft()
            if end - self.online_length >= self.totals[stream] - self.stream_capacity:
                taken.append((stream, end))
        return taken

    def gather(self, positions: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
        stream, rows = positions
        batch = {k: v[stream[:, None], rows] for k, v in self.data.items()}
        if "is_first" in batch and "is_last" in batch:
            batch["is_last"] = close_abandoned_episodes(batch["is_first"], batch["is_last"])
        return batch

    def write(self, positions: tuple[np.ndarray, np.ndarray], values: dict[str, np.ndarray]) -> None:
        """Overwrite stored keys at sampled positions (values ``[B, length, ...]``).

        Rows already written to chunk files keep their saved values there; a resumed run reads those.
        """
        stream, rows = positions
        for key, value in values.items():
            self.data[key][stream[:, None], rows] = value

    # ---------------------------------------------------------------- persistence
    def _stream_slice(self, stream: int, start: int, end: int) -> dict[str, np.ndarray]:
        rows = np.arange(start, end) % self.stream_capacity
        return {k: v[stream, rows] for k, v in self.data.items()}

    def save(self) -> None:
        """Write every stream's unsaved steps to a new chunk file and delete fully evicted chunks."""
        if self.directory is None or not self.data:
            return
        for stream in range(self.num_streams):
            start, end = int(self.saved[stream]), int(self.totals[stream])
            if end > start:
                path = self.directory / f"stream{stream:03d}_{start:012d}_{end:012d}.npz"
                save_chunk(path, self._stream_slice(stream, start, end))
                self.saved[stream] = end
        for path, stream, _start, end in self.chunk_files():
            if end <= self.totals[stream] - self.stream_capacity:
                path.unlink()

    def chunk_files(self) -> list[tuple[Path, int, int, int]]:
        found = []
        for path in sorted(self.directory.glob("stream*.npz")):
            match = CHUNK_PATTERN.match(path.name)
            if match:
                found.append((path, *(int(g) for g in match.groups())))
        return found

    def load(self, totals: list[int]) -> None:
        """Restore the state saved with a checkpoint: exactly ``totals[i]`` steps per stream.

        Chunks written after that checkpoint (a crash before the next one) are dropped or cut, so the
        replay matches the restored step counters.
        """
        if len(totals) != self.num_streams:
            raise ValueError(f"checkpoint has {len(totals)} replay streams, this run has {self.num_streams}")
        for path, stream, start, end in self.chunk_files():
            limit = totals[stream]
            if start >= limit:
                path.unlink()
                continue
            arrays = {k: v[: min(end, limit) - start] for k, v in read_chunk(path).items()}
            if end > limit:  # cut the chunk back to the checkpoint, keeping files and counters consistent
                path.unlink()
                save_chunk(self.directory / f"stream{stream:03d}_{start:012d}_{limit:012d}.npz", arrays)
            if not self.data:
                self._allocate({k: v[:1].repeat(self.num_streams, 0) for k, v in arrays.items()})
            first = max(start, limit - self.stream_capacity)
            rows = np.arange(first, min(end, limit)) % self.stream_capacity
            for key, value in arrays.items():
                self.data[key][stream, rows] = value[first - start:]
        self.totals = np.asarray(totals, np.int64)
        self.saved = self.totals.copy()

    def state(self) -> dict:
        return {"totals": self.totals.tolist(), "rng": self.rng.bit_generator.state,
                "online_queue": list(self.online_queue)}

    def load_state(self, state: dict) -> None:
        self.load(state["totals"])
        self.rng.bit_generator.state = state["rng"]
        self.online_queue = deque(tuple(entry) for entry in state.get("online_queue", []))
