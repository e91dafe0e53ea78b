"""The ways items run (serial, thread, process, executor, coroutines) and the pools beneath them."""
