"""Getting the views into containers: OCI hooks, `inject`, the watcher and healing.

Everything here bind-mounts view files from the host's mountpoint into a container's
mount namespace with the new mount API (open_tree + move_mount), so no binary or path
inside the container is needed and the same code serves a hook before pivot_root and a
running container long after it.
"""
