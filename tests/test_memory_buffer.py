import torch

from enas_tui.config import BufferConfig
from enas_tui.memory_buffer import MemoryBuffer

D = 23


class Counter:
    """A sampler that numbers its rows so the test can see which went where."""

    def __init__(self):
        self.next = 0

    def __call__(self, k):
        rows = torch.arange(self.next, self.next + k).unsqueeze(1).repeat(1, D)
        self.next += k
        return rows


def cfg(**kw):
    base = dict(start_epoch=5, add_per_epoch=1000, capacity=10000, replace_per_epoch=100,
                supervised_start_epoch=10, supervised_batch=100)
    base.update(kw)
    return BufferConfig(**base)


def test_waits_until_start_epoch_then_adds_per_epoch_up_to_capacity():
    buf, sampler = MemoryBuffer(cfg(), D), Counter()
    for epoch in range(1, 5):
        assert buf.update(epoch, sampler) == (0, 0)
        assert buf.phase(epoch) == "waiting" and buf.size == 0
    sizes = []
    for epoch in range(5, 15):
        assert buf.phase(epoch) == "filling"
        assert buf.update(epoch, sampler) == (1000, 0)
        sizes.append(buf.size)
    assert sizes == list(range(1000, 10001, 1000))
    assert buf.full and buf.phase(15) == "full"


def test_partial_last_fill_stops_at_capacity():
    buf, sampler = MemoryBuffer(cfg(start_epoch=1, add_per_epoch=300, capacity=1000), D), Counter()
    added = [buf.update(e, sampler)[0] for e in range(1, 5)]
    assert added == [300, 300, 300, 100]
    assert buf.size == 1000


def test_full_buffer_replaces_random_rows():
    buf, sampler = MemoryBuffer(cfg(start_epoch=1, add_per_epoch=1000, capacity=1000, replace_per_epoch=100), D, seed=3), Counter()
    buf.update(1, sampler)
    before = buf.rows.clone()
    assert buf.update(2, sampler) == (0, 100)
    changed = (buf.rows != before).any(dim=1).nonzero().squeeze(1)
    assert len(changed) == 100
    assert set(buf.rows[changed, 0].tolist()) == set(range(1000, 1100))
    # random slots, not the last 100 rows (the authors' code quirk)
    assert changed.tolist() != list(range(900, 1000))
    assert int(changed.min()) < 900


def test_supervised_switches_on_at_its_epoch_once_buffer_has_rows():
    buf = MemoryBuffer(cfg(), D)
    assert not buf.supervised_active(10)  # empty
    buf.update(5, Counter())
    assert not buf.supervised_active(9)
    assert buf.supervised_active(10)


def test_sample_draws_stored_rows_without_replacement():
    buf = MemoryBuffer(cfg(start_epoch=1, add_per_epoch=500, capacity=500), D, seed=1)
    buf.update(1, Counter())
    rows = buf.sample(100)
    assert rows.shape == (100, D)
    assert len(set(rows[:, 0].tolist())) == 100
    assert int(rows.max()) < 500


def test_state_round_trip_continues_identically():
    a = MemoryBuffer(cfg(start_epoch=1, add_per_epoch=50, capacity=100), D, seed=2)
    a.update(1, Counter())
    state = a.state_dict()
    b = MemoryBuffer(cfg(start_epoch=1, add_per_epoch=50, capacity=100), D, seed=99)
    b.load_state_dict(state)
    assert torch.equal(a.sample(10), b.sample(10))
    assert b.size == 50
