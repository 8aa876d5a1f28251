"""`mesolite dns`: Mesos-DNS-compatible names for the cluster's tasks, masters and agents (see docs/dns.md)."""
