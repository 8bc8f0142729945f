"""Reading cgroup v1 and v2 counters into one model."""
