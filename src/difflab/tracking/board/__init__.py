"""`difflab board`: a small read-only web front end over the run store (stdlib only)."""
