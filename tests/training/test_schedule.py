"""The loop's schedules against hand-worked step sequences."""

import pytest

from pvm_mbrl.training.schedule import Every, Ratio


def test_every_fires_at_each_multiple_once():
    every = Every(100)
    fired = [step for step in range(0, 501, 20) if every(step)]
    assert fired == [100, 200, 300, 400, 500]


def test_every_keeps_absolute_multiples_after_a_resume_and_skips_jumped_ones():
    every = Every(100, start=240)  # resumed at step 240: the next one is 300, not 340
    assert not every(280) and every(300) and not every(340)
    assert every(530) and every(600)  # a jump past 400 and 500 fires once; the schedule stays on multiples
    with pytest.raises(ValueError, match="interval must be > 0"):
        Every(0)


def test_ratio_owes_work_at_its_rate_and_carries_the_fraction():
    ratio = Ratio(0.25)  # e.g. train_ratio 64 over batches of 16 x 16: one update per 4 env steps
    done = []
    for _ in range(10):
        ratio.add(1)
        count = 0
        while ratio.take():
            count += 1
        done.append(count)
    assert done == [0, 0, 0, 1, 0, 0, 0, 1, 0, 0] and ratio.owed == pytest.approx(0.5)
    resumed = Ratio(2.0, owed=0.5)
    resumed.add(1)
    assert [resumed.take() for _ in range(3)] == [True, True, False] and resumed.owed == pytest.approx(0.5)
    with pytest.raises(ValueError, match="per_step must be > 0"):
        Ratio(0)
