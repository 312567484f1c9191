"""Synthesis: Self-Instruct, Evol-Instruct, responses and model annotations."""
