"""Reading the host: kernel files, mount tables, small caches."""
