"""enas-tui: ENAS recurrent-cell search with a live view of what its controller learns."""

__version__ = "0.1.0"
