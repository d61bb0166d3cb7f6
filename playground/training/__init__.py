"""Training: the one-model trainer and the K-model engine, the rules they share (coins, finiteness, scoring,
metric names), and run folders on disk (configs, metrics, checkpoints). Knows nothing of threads or pages."""
