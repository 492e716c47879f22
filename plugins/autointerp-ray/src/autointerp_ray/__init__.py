"""autointerp's executor on a Ray cluster. Importing this package imports no ray: the executor
connects (and imports ray) when a run first hands it work."""
