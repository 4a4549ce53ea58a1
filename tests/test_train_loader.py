"""The training loader: one DataLoader for every epoch, its worker processes started once
(persistent), fed (epoch, index) pairs by training.train.EpochItems. On a real cache of encoded
clips with augmentation on, every epoch's batches are exactly those of the loader made afresh each
epoch that training used before (same order, same augmentation draws), in worker processes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.spec import InputSpec  # noqa: E402
from training.config import AugmentSection  # noqa: E402
from training.train import EpochItems, make_loader  # noqa: E402

SIZE = 32
SPEC = InputSpec("segments", "mv_residual", (1, 3, 5, SIZE, SIZE))
AUGMENT = AugmentSection(hflip=0.5, crop_scale=(0.7, 1.0), mv_noise_px=0.5, window_jitter_frames=2)
SEED_BASE = 7000


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    from training.__main__ import main
    from training.cache import CacheSpec, build_cache

    out = tmp_path_factory.mktemp("loader") / "synth"
    assert main(["synth", "--preset", "tiny", "--clips-per-class", "3", "--size", "64x48", "--frames", "12",
                 "--seed", "1", "--workers", "1", "--out", str(out), "--json"]) == 0
    return build_cache(out, tmp_path_factory.mktemp("cache"), CacheSpec(size=SIZE), workers=1, progress=False)


def _dataset(cache):
    from training.cache import CachedClips

    return CachedClips.for_specs(cache, "train", (SPEC,), seed=3, augment=AUGMENT)


def _batches(loader) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(b["segments"].numpy().copy(), b["label"].numpy().copy()) for b in loader]


def test_epoch_items_keep_the_order_of_a_fresh_shuffling_loader_per_epoch():
    for length in (1, 10, 97):
        items = EpochItems(length, SEED_BASE)
        for epoch in range(3):
            items.set_epoch(epoch)
            g = torch.Generator()
            g.manual_seed(SEED_BASE + epoch)
            fresh = [int(i) for i in torch.utils.data.DataLoader(range(length), batch_size=None, shuffle=True,
                                                                  generator=g)]
            assert [i for _, i in items] == fresh
            assert all(e == epoch for e, _ in items) and len(items) == length
    assert [i for _, i in EpochItems(5, 0, shuffle=False)] == [0, 1, 2, 3, 4]


def test_an_inner_sampler_gets_the_epoch_and_sets_the_order():
    class Inner:
        def __init__(self):
            self.epoch = None

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __iter__(self):
            return iter([4, 2] if self.epoch == 1 else [0, 1])

        def __len__(self):
            return 2

    inner = Inner()
    items = EpochItems(10, 0, inner=inner)
    items.set_epoch(1)
    assert inner.epoch == 1 and list(items) == [(1, 4), (1, 2)] and len(items) == 2


def test_one_persistent_loader_gives_every_epoch_the_batches_a_fresh_loader_gave(cache):
    old, new = _dataset(cache), _dataset(cache)
    assert old.augmenter is not None
    items = EpochItems(len(new), SEED_BASE)
    persistent = make_loader(new, 4, True, 0, 2, sampler=items, persistent=True)
    assert persistent.persistent_workers
    seen = []
    for epoch in range(3):
        old.set_epoch(epoch)
        before = _batches(make_loader(old, 4, True, SEED_BASE + epoch, 2))  # what training made per epoch
        items.set_epoch(epoch)  # only the sampler learns the epoch: the workers' copies never do
        after = _batches(persistent)
        assert len(before) == len(after) == -(-len(old) // 4)
        for (x0, y0), (x1, y1) in zip(before, after):
            assert np.array_equal(x0, x1) and np.array_equal(y0, y1)
        seen.append(np.concatenate([x for x, _ in after]))
    # augmentation draws differ between epochs: a worker that kept epoch 0's draws would fail above
    assert not np.array_equal(np.sort(seen[0].ravel()), np.sort(seen[1].ravel()))


def test_an_epoch_cut_short_leaves_the_next_epoch_whole(cache):
    ds = _dataset(cache)
    items = EpochItems(len(ds), SEED_BASE)
    loader = make_loader(ds, 2, True, 0, 2, sampler=items, persistent=True)
    items.set_epoch(0)
    for i, _ in enumerate(loader):  # max_steps_per_epoch: training stops reading mid-epoch
        if i == 1:
            break
    items.set_epoch(1)
    labels = np.concatenate([y for _, y in _batches(loader)])
    expected = [int(ds.item(i, np.random.default_rng((ds.seed, 1, i)))[1]) for _, i in items]
    assert labels.tolist() == expected
