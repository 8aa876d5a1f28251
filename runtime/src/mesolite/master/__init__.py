"""The Mesos-compatible master: leader election, agents, frameworks, DRF allocation, the v1 scheduler API."""
