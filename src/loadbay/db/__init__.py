"""Storage: the schema, the engine, and every SQL statement of the core (queue and repository)."""
