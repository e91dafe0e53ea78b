"""The façade: the public calls, their checks, and the glue from a call to its plan and run."""
