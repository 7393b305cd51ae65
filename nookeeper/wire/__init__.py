"""ZooKeeper's client wire format (jute records) as construct definitions."""
