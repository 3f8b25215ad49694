"""The Zuora sandbox: a tenant generator (``generate``) and, later, an HTTP server speaking
Zuora's API shapes over a generated or hand-written dataset."""
