"""Normalise, diff, cross-object rules and repair plans."""
