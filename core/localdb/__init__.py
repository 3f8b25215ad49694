"""The local (CustomersDot) database: schema from the catalogue, and connections."""
