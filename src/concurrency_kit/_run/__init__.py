"""The run of a decided call: the hand-over from the decision, the run engine, the results."""
