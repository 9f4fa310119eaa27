"""Built-in simulated worlds, the sim node, and data collection to MCAP bags."""
