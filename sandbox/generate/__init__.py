"""Realistic Zuora tenant + local copy generator with labelled drift (``recon sandbox generate``)."""
