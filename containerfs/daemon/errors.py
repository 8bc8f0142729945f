"""What the core reports to its front ends; the FUSE adapter maps these to errno."""


class NotFound(LookupError):
    """No such file or directory in the mount."""


class IsADirectory(IsADirectoryError):
    pass


class ReadFailed(OSError):
    """A container's view cannot be computed now: its reader gets an error, never the host's figures."""
