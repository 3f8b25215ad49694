"""Lowest floor: the object catalogue, configuration, local-database access, the Zuora
sandbox (server and tenant generator) and the extractors. Nothing here imports a higher floor."""
