"""Business-rule suites (GX JSON): data files, a package only so that wheels ship them."""
