"""Command line: the only place where names become objects and the pieces are wired."""
