"""Containers: which one a process belongs to, finding them, their figures."""
