"""Experiments carried out of the playground: a standalone PyTorch script, TensorBoard event files."""
