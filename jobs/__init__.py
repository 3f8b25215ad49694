"""Top floor: the CLI, the scheduler, run history and repair apply."""
