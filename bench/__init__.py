"""`make bench`: loadbay end to end against the database's own bulk load and a naive importer."""
