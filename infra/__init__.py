"""Infrastructure helpers: cluster definitions and the local multi-node test cluster."""
