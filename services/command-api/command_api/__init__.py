"""command-api: validates writes, commits them with their event, and relays events to RabbitMQ."""
