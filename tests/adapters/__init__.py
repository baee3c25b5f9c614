"""Framework adapter tests: the shared request table plus one file per framework."""
