"""The UI's pages: one module per page (or family of pages), each with a `router`."""
