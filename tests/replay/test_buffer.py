import numpy as np
import pytest

from pvm_mbrl.replay.buffer import ReplayBuffer, capacity_for_run, check_fits_in_memory, close_abandoned_episodes


def fill(buffer, steps, streams=1):
    for t in range(steps):
        buffer.add({
            "t": np.full(streams, t, np.int64),
            "stream": np.arange(streams),
            "image": np.full((streams, 4, 4, 3), t % 256, np.uint8),
            "is_first": np.full(streams, t % 10 == 0),
        })


def test_samples_are_contiguous_and_from_one_stream():
    buffer = ReplayBuffer(capacity=300, num_streams=3, seed=0)
    fill(buffer, 50, streams=3)
    assert buffer.sequences(8) == 3 * 43  # starts 0..42 in each stream, as DreamerV3 counts its items
    batch = buffer.sample(64, 8)
    assert batch["t"].shape == (64, 8) and batch["image"].shape == (64, 8, 4, 4, 3)
    assert np.all(np.diff(batch["t"], axis=1) == 1)
    assert np.all(batch["stream"] == batch["stream"][:, :1])
    assert set(np.unique(batch["stream"])) == {0, 1, 2}
    assert batch["image"].dtype == np.uint8


def test_capacity_evicts_oldest_and_sequences_cross_episode_boundaries():
    buffer = ReplayBuffer(capacity=20, num_streams=1, seed=0)
    fill(buffer, 45)
    assert len(buffer) == 20 and buffer.sequences(5) == 16 and buffer.sequences(21) == 0
    batch = buffer.sample(500, 5)
    assert batch["t"].min() >= 25 and batch["t"].max() == 44  # only the newest 20 steps; all starts hit
    assert np.all(np.diff(batch["t"], axis=1) == 1)  # contiguous across the ring's wrap-around
    assert batch["is_first"][:, 1:].any()  # chunks may contain an episode start (RSSM resets there)


def test_close_abandoned_episodes_hand_values():
    is_first = np.array([[1, 0, 0, 1, 0], [0, 0, 1, 0, 0]], bool)
    is_last = np.array([[0, 0, 1, 0, 0], [0, 0, 0, 0, 1]], bool)  # row 1's first episode ends without is_last
    expected = np.array([[0, 0, 1, 0, 0], [0, 1, 0, 0, 1]], bool)  # the last column has no next step to read
    assert np.array_equal(close_abandoned_episodes(is_first, is_last), expected)


def test_sampled_batches_close_an_episode_cut_short():
    buffer = ReplayBuffer(capacity=40, seed=0)
    for t in range(30):  # episodes start at 0 and 10 (ended properly at 9), and at 17 (the one before cut short)
        buffer.add({"t": np.array([t]), "is_first": np.array([t in (0, 10, 17)]), "is_last": np.array([t == 9])})
    batch = buffer.sample(200, 6)
    cut = (batch["t"] == 16) & (np.arange(6) < 5)  # seen only where the batch holds the next step too
    assert cut.any() and np.array_equal(batch["is_last"], (batch["t"] == 9) | cut)
    assert not buffer.data["is_last"][0, 16]  # what is stored stays as recorded


def test_bytes_per_step_and_errors():
    buffer = ReplayBuffer(capacity=10, seed=0)
    fill(buffer, 3)
    assert buffer.bytes_per_step == 8 + 8 + 4 * 4 * 3 + 1
    with pytest.raises(ValueError, match="fewer than one sequence of length 5"):
        buffer.sample(1, 5)
    with pytest.raises(KeyError, match="differ from stored keys"):
        buffer.add({"t": np.zeros(1)})


def test_save_and_load_restore_identical_contents(tmp_path):
    buffer = ReplayBuffer(capacity=40, num_streams=2, directory=tmp_path, chunk_size=16, seed=0)
    fill(buffer, 35, streams=2)  # more than a stream's capacity (20): old chunks are evicted
    buffer.save()
    state = buffer.state()
    restored = ReplayBuffer(capacity=40, num_streams=2, directory=tmp_path, chunk_size=16, seed=1)
    restored.load_state(state)
    for key in buffer.data:
        assert np.array_equal(buffer.data[key], restored.data[key]), key
    assert np.array_equal(buffer.sample(8, 4)["t"], restored.sample(8, 4)["t"])  # same sampler state too


def test_load_drops_steps_written_after_the_checkpoint(tmp_path):
    buffer = ReplayBuffer(capacity=100, directory=tmp_path, chunk_size=8, seed=0)
    fill(buffer, 10)
    buffer.save()
    state = buffer.state()  # "checkpoint" at 10 steps
    fill(buffer, 20)  # a crash after more chunk files were written
    restored = ReplayBuffer(capacity=100, directory=tmp_path, chunk_size=8, seed=0)
    restored.load_state(state)
    assert len(restored) == 10 and restored.totals.tolist() == [10]
    assert sum(end - start for _, _, start, end in restored.chunk_files()) == 10


def test_disk_storage_keeps_the_ring_in_memory_mapped_files(tmp_path):
    buffer = ReplayBuffer(capacity=20, directory=tmp_path, storage="disk", seed=0)
    fill(buffer, 30)
    assert isinstance(buffer.data["image"], np.memmap) and (tmp_path / "ring" / "image.npy").exists()
    assert np.array_equal(np.sort(buffer.data["t"][0]), np.arange(10, 30))
    buffer.save()
    restored = ReplayBuffer(capacity=20, directory=tmp_path, storage="disk", seed=0)
    restored.load_state(buffer.state())
    assert np.array_equal(restored.data["t"], buffer.data["t"])
    with pytest.raises(ValueError, match="replay storage must be one of memory, disk"):
        ReplayBuffer(capacity=20, storage="tape")


def test_online_queue_trains_each_new_segment_once_before_uniform_samples():
    buffer = ReplayBuffer(capacity=1000, num_streams=2, seed=0, online_length=5)
    fill(buffer, 12, streams=2)  # each stream completed the segments t 1..5 and 6..10, as DreamerV3 counts them
    stream, rows = buffer.sample_positions(3, 5)
    batch = buffer.gather((stream, rows))
    # The oldest queued segments come first: stream 0's and 1's t 1..5, then stream 0's 6..10.
    assert batch["t"][:3, 0].tolist() == [1, 1, 6] and batch["stream"][:3, 0].tolist() == [0, 1, 0]
    rest = buffer.sample(4, 5)  # one queued segment left (stream 1, t 6..10), then uniform
    assert rest["t"][0, 0] == 6 and rest["stream"][0, 0] == 1
    assert not buffer.online_queue
    assert buffer.sample(2, 3)["t"].shape == (2, 3)  # other lengths never take from the queue


def test_online_queue_skips_evicted_segments_and_survives_state_round_trip(tmp_path):
    buffer = ReplayBuffer(capacity=8, num_streams=1, seed=0, online_length=4, directory=tmp_path)
    fill(buffer, 13)  # segments t 1..4 (evicted: the ring holds 5..12), 5..8 and 9..12
    state = buffer.state()
    restored = ReplayBuffer(capacity=8, num_streams=1, seed=0, online_length=4, directory=tmp_path)
    buffer.save()
    restored.load_state(state)
    for replay in (buffer, restored):
        batch = replay.sample(2, 4)
        assert batch["t"][:, 0].tolist() == [5, 9]


def test_write_replaces_values_at_sampled_positions():
    buffer = ReplayBuffer(capacity=50, num_streams=2, seed=0)
    fill(buffer, 20, streams=2)
    stream, rows = buffer.sample_positions(1, 6)
    buffer.write((stream, rows[:, 1:]), {"t": np.full((1, 5), -1, np.int64)})
    again = buffer.gather((stream, rows))
    assert np.all(again["t"][:, 1:] == -1) and np.all(again["t"][:, 0] >= 0)
    assert (buffer.data["t"] == -1).sum() == 5  # nothing else changed


@pytest.mark.parametrize("damage", ["truncate", "garbage", "pickled"])
def test_a_damaged_chunk_is_named_and_never_unpickled(tmp_path, damage):
    from pvm_mbrl.errors import ReplayReadError

    buffer = ReplayBuffer(capacity=40, num_streams=1, directory=tmp_path, chunk_size=16, seed=0)
    fill(buffer, 20)
    buffer.save()
    chunk = sorted(tmp_path.glob("*.npz"))[0]
    if damage == "truncate":
        chunk.write_bytes(chunk.read_bytes()[:200])
    elif damage == "garbage":
        chunk.write_bytes(b"\xff" * 300)
    else:  # a pickled object array (a foreign or malicious file) must not be loaded
        np.savez(chunk, t=np.array([{"x": 1}], dtype=object))
    restored = ReplayBuffer(capacity=40, num_streams=1, directory=tmp_path, chunk_size=16, seed=0)
    with pytest.raises(ReplayReadError, match=f"replay chunk {chunk} is unreadable"):
        restored.load_state(buffer.state())


def test_capacity_for_run_is_the_steps_a_run_adds_hand_values():
    # 10,000 env steps at action repeat 2, one env: 5,000 agent steps, so a 1M capacity becomes 5,000.
    assert capacity_for_run(1_000_000, 10_000, 2, 1) == 5_000
    # 4 envs, 1,001 env steps at repeat 2: ceil(1001 / 8) = 126 adds of 4 steps = 504.
    assert capacity_for_run(1_000_000, 1_001, 2, 4) == 504
    # A smaller configured capacity stays, and never below one step per stream.
    assert capacity_for_run(300, 10_000, 2, 1) == 300
    assert capacity_for_run(1_000_000, 0, 2, 4) == 4
    assert ReplayBuffer(10, num_streams=4).capacity == 8  # whole steps per stream


def test_a_replay_larger_than_memory_is_refused_naming_the_key_and_the_fix():
    step = {"image": np.zeros((2, 8, 8, 3), np.uint8), "encoder_cache": np.zeros((2, 100), np.float32)}
    # 192 + 400 = 592 bytes per step; 1,000 steps = 592,000 bytes.
    check_fits_in_memory(step, 1_000, 592_000)
    with pytest.raises(MemoryError) as error:
        check_fits_in_memory(step, 1_000, 591_999)
    message = str(error.value)
    assert "592 bytes per step, 400 of them 'encoder_cache'" in message
    assert "replay_capacity to at most 999" in message and "replay_storage=disk" in message


def test_an_oversized_replay_fails_when_allocated_not_when_full():
    buffer = ReplayBuffer(10**15, num_streams=1)
    with pytest.raises(MemoryError, match="replay_capacity 1,000,000,000,000,000"):
        buffer.add({"obs": np.zeros((1, 4), np.float32)})
    assert buffer.data == {}  # nothing half-allocated
