"""The `maestrale` command line: registry, database, tokens and the REST server (see `maestrale --help`)."""
