"""Sweeps: many controllers, seeds and settings at once, each point an ordinary session, on Ray Tune.

- ``grid.py``: the command's flags -> a :class:`~enas_tui.sweep.grid.SweepSpec` and its points,
  each with a stable session id (so a re-run finds the sessions it made before);
- ``record.py``: ``<sessions>/sweeps/<name>.json``, which sessions belong to a sweep and where
  each ran; read by ``sweep status``, ``watch`` and ``report`` (no Ray, no torch);
- ``trial.py``: what one point does: start or resume ``enas-tui train --headless`` as a child
  process and watch it (no Ray, no torch);
- ``runner.py``: Ray Tune around the trials: local or cluster Ray, retries from the last
  checkpoint, graceful Ctrl-C, the record kept up to date.

Ray is an optional extra (``pip install -e ".[sweep]"``); only ``runner.py`` imports it.
"""

from __future__ import annotations

RAY_INSTALL_HINT = 'sweeps run on Ray, which is not installed: pip install "enas-tui[sweep]" (or -e ".[sweep]" in a checkout)'
