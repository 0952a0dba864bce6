"""Figures (matplotlib): skeleton drawing shared by the jobs and the CLI."""
