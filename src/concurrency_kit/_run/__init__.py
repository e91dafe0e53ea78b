"""The run of a decided call: the hand-over from the decision, the stream engine, the results."""
