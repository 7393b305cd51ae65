"""Applications built on nookeeper.client, shipped with the project to learn from."""
