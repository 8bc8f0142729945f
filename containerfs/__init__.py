"""containerfs: per-container /proc views served over FUSE."""

__version__ = "0.1.0"
