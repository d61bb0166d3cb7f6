"""Plotly figure builders: pure functions from data to go.Figure, nothing else."""
