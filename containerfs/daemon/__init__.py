"""The daemon: FUSE core and adapter, mounting, control socket, per-container tracking."""
