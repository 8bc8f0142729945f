"""What the core reports to its front ends; the FUSE adapter maps these to errno."""


class NotFound(LookupError):
    """No such file or directory in the mount."""


class ReadOnly(PermissionError):
    """The mount is read-only: writes, creates, renames and mode changes are refused."""


class IsADirectory(IsADirectoryError):
    pass


class BadHandle(LookupError):
    """A file handle the core never issued or already released."""
