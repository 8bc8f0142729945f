"""containerfs-runtime: an OCI runtime that edits the bundle, then runs the real runtime."""
