"""HTML and JSON drift reports."""
