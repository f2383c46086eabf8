"""Transport backends, one per file: `memory` (in-process) and `rabbitmq` (pika)."""
