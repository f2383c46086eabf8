"""Model registry: SQL metadata, content-addressed blobs, safe formats, local and remote clients."""
