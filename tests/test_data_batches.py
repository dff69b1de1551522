"""scale_images / to_uint8 and InMemoryBatches: ranges, order, exact resume, DDP shards."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from difflab.data import InMemoryBatches, scale_images, to_uint8


def numbered_images(n: int, shape=(1, 4, 4)) -> np.ndarray:
    """Image i is filled with i % 256, so a batch tells which images it holds."""
    return (np.arange(n)[:, None, None, None] % 256 * np.ones((1, *shape))).astype(np.uint8)


def epoch_ids(batches: InMemoryBatches) -> list[int]:
    return [i for _, y in batches for i in y.tolist()]


@pytest.mark.parametrize(("low", "high"), [(-0.5, 0.5), (-1.0, 1.0), (0.0, 1.0)])
def test_scale_and_back_is_exact_on_the_uint8_grid(low, high):
    u = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    x = scale_images(u, low, high)
    assert x.dtype == torch.float32 and x.min() == low and x.max() == pytest.approx(high)
    assert torch.equal(to_uint8(x, low, high), u)
    np.testing.assert_allclose(x.flatten(), low + (high - low) * np.arange(256) / 255, atol=1e-6)


def test_to_uint8_rounds_and_clamps():
    step = 1 / 255  # one uint8 level in [-0.5, 0.5]
    x = torch.tensor([-2.0, -0.5 + 0.49 * step, -0.5 + 0.51 * step, 0.5, 3.0])
    assert to_uint8(x).tolist() == [0, 0, 1, 255, 255]


def test_padding_is_black_and_numpy_input_works():
    u = np.full((2, 1, 28, 28), 255, dtype=np.uint8)
    x = scale_images(u, -0.5, 0.5, pad=2)
    assert x.shape == (2, 1, 32, 32)
    assert x[:, :, :2].eq(-0.5).all() and x[:, :, :, -2:].eq(-0.5).all()
    assert x[:, :, 2:30, 2:30].eq(0.5).all()
    with pytest.raises(ValueError, match="uint8"):
        scale_images(u.astype(np.float32))
    with pytest.raises(ValueError, match="greater than low"):
        scale_images(u, 1.0, 0.0)


def test_batches_shapes_range_and_pairs():
    images = numbered_images(100)
    batches = InMemoryBatches(images, np.arange(100), batch_size=16, low=-1, high=1, pad=2)
    assert len(batches) == 6  # drop_last
    for x, y in batches:
        assert x.shape == (16, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.min() >= -1 and x.max() <= 1
        assert torch.equal(to_uint8(x[:, :, 2:-2, 2:-2], -1, 1), torch.from_numpy(images[y]))
    tail = InMemoryBatches(images, batch_size=16, drop_last=False, shuffle=False)
    sizes = [len(x) for x, y in tail]
    assert sizes == [16] * 6 + [4] and len(tail) == 7 and all(y is None for _, y in tail)


def test_shuffle_is_a_function_of_seed_and_epoch():
    def order(seed: int, epoch: int) -> list[int]:
        b = InMemoryBatches(numbered_images(50), np.arange(50), batch_size=10, seed=seed)
        b.set_epoch(epoch)
        return epoch_ids(b)

    assert sorted(order(0, 0)) == list(range(50))
    assert order(0, 0) == order(0, 0) and order(3, 7) == order(3, 7)
    assert order(0, 0) != order(0, 1) and order(0, 0) != order(1, 0)
    plain = InMemoryBatches(numbered_images(50), np.arange(50), batch_size=10, shuffle=False)
    assert epoch_ids(plain) == list(range(50))


def test_epochs_advance_and_state_follows():
    b = InMemoryBatches(numbered_images(40), np.arange(40), batch_size=8, seed=5)
    first, second = epoch_ids(b), epoch_ids(b)
    assert b.state_dict()["epoch"] == 2 and b.state_dict()["position"] == 0
    assert first != second and sorted(second) == list(range(40))
    b.set_epoch(1)
    assert epoch_ids(b) == second


@pytest.mark.parametrize("stop_after", [0, 1, 3, 4])
def test_resume_mid_epoch_is_exact(stop_after):
    def make() -> InMemoryBatches:
        return InMemoryBatches(numbered_images(37), np.arange(37), batch_size=8, seed=11)

    reference = make()
    epoch_ids(reference)  # epoch 0
    expected = [y.tolist() for _, y in reference]  # epoch 1, uninterrupted
    run = make()
    epoch_ids(run)
    batches = iter(run)
    seen = [next(batches)[1].tolist() for _ in range(stop_after)]  # then the run stops
    state = json.loads(json.dumps(run.state_dict()))  # as a checkpoint stores it
    assert state["epoch"] == (2 if stop_after == 4 else 1)
    resumed = make()
    resumed.load_state_dict(state)
    resumed.set_epoch(1)  # a Learner calling set_epoch at the epoch start must not undo it
    rest = [y.tolist() for _, y in resumed] if stop_after < 4 else []
    assert seen + rest == expected


def test_state_from_other_settings_is_refused():
    b = InMemoryBatches(numbered_images(20), batch_size=4, seed=1)
    other = InMemoryBatches(numbered_images(20), batch_size=4, seed=2)
    with pytest.raises(ValueError, match="seed=1 but this loader has seed=2"):
        other.load_state_dict(b.state_dict())
    b.load_state_dict({"epoch": 3, "position": 5})  # 5 of 5 batches: epoch 3 is done
    assert (b.epoch, b.position) == (4, 0)
    with pytest.raises(ValueError, match="outside 0..5"):
        b.load_state_dict({"epoch": 3, "position": 6})


@pytest.mark.parametrize(("n", "drop_last"), [(60, True), (64, True), (64, False), (61, False)])
def test_ddp_shards_are_disjoint_and_cover_the_data(n, drop_last):
    world = 3
    shards = []
    for rank in range(world):
        b = InMemoryBatches(
            numbered_images(n),
            np.arange(n),
            batch_size=4,
            seed=9,
            drop_last=drop_last,
            rank=rank,
            world_size=world,
        )
        b.set_epoch(2)
        shards.append(epoch_ids(b))
    assert len({len(s) for s in shards}) == 1  # same number of batches on every rank
    everything = [i for s in shards for i in s]
    if drop_last:
        assert len(set(everything)) == len(everything)  # disjoint
        assert len(everything) >= n - world * 4  # only the tail that fills no batch is dropped
    else:
        assert set(everything) == set(range(n))  # all covered
        assert len(everything) - n < world  # padded by fewer than world_size repeats
    single = InMemoryBatches(numbered_images(n), np.arange(n), batch_size=4, seed=9)
    single.set_epoch(2)
    perm = single.order(2).tolist()  # one permutation shared by all ranks
    assert shards[1][:4] == perm[1:12:world]


def test_a_batch_is_an_index_into_the_preloaded_tensor():
    b = InMemoryBatches(numbered_images(30), np.arange(30), batch_size=5, pad=1)
    assert b.x.shape == (30, 1, 6, 6) and b.x.dtype == torch.float32
    x, y = next(iter(b))
    assert torch.equal(x, b.x[y])


def test_bad_options_are_reported():
    with pytest.raises(ValueError, match="no batch of 64"):
        InMemoryBatches(numbered_images(10), batch_size=64)
    with pytest.raises(ValueError, match="rank < world_size"):
        InMemoryBatches(numbered_images(10), batch_size=2, rank=2, world_size=2)
    with pytest.raises(ValueError, match=r"labels must have shape \(10,\)"):
        InMemoryBatches(numbered_images(10), np.arange(9), batch_size=2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        InMemoryBatches(np.zeros((10, 4, 4), np.uint8), batch_size=2)
