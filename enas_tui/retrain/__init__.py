"""ENAS's final step: retrain one architecture from scratch as a standalone language model.

ENAS ends by taking the best sampled cell, re-initialising it and training it alone; its test
perplexity is the number ENAS papers report. This subpackage holds that step:

- ``settings``: RetrainSettings, the ``cpu`` and ``paper`` presets and where their numbers come from;
- ``model``: the standalone model, a language model whose cell has only that architecture's edges
  (it runs the same recurrence as the search's supernet, ``supernet.run_cell``);
- ``averaging``: NT-ASGD, the switch to averaged SGD once validation stalls (AWD-LSTM);
- ``source``: what to retrain: a search session's derived architecture or a given cell (torch-free);
- ``trainer``: the training loop, recorded as a session like any search.
"""
