"""Activation: consented audiences sent to the tools that run campaigns."""
