"""Framework side of the Mesos v1 scheduler API."""
