"""query-api: serves reads (list, search, one contact, its history) from PostgreSQL as a read-only role."""
