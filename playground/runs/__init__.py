"""The run lifecycle: engines behind one typed protocol, a thread per run with its buttons (start, pause, step,
stop), saving every few seconds, and the registry that lists and reopens runs of every kind."""
