"""Pure parsers and renderers for kernel /proc text formats."""
