"""The damage fuzz in CI: ~100 seeded damaged copies of one real session through every command.

The counts are printed (run with ``-s``, or ``python tests/fuzz.py`` for the same counts).
"""

from __future__ import annotations

import pytest

import fuzz


@pytest.mark.timeout(900)
def test_damage_fuzz(tmp_path_factory):
    work = tmp_path_factory.mktemp("fuzz")
    base = fuzz.make_base(work / "base")
    counts = fuzz.run(base, work, n=100, seed=0, pilot_every=5, resumes=4, analyses=2, reports=1)
    print("\n" + counts.summary())
    assert counts.failures == []
    assert (counts.tracebacks, counts.wrong_statuses, counts.records_lost, counts.false_records) == (0, 0, 0, 0)
    assert counts.cases == 100 and counts.notices >= 90  # every case but clean cuts between records is shown
