"""`assay view`: a read-only local browser of a run's records."""
