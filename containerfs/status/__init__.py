"""`containerfs status`: the daemon's figures and every container's, as a table, JSON, checks, metrics."""
