"""The decision: the named steps, the probe, kinds, memory, the cost model's choice and the Plan."""
