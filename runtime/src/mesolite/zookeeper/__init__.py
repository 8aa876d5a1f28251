"""ZooKeeper: URLs, an asyncio-friendly session, Mesos-compatible master election and detection, a value store."""
