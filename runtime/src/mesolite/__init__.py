"""mesolite: a Mesos- and Marathon-compatible control plane."""

__version__ = "0.1.0"

# The Mesos release whose HTTP APIs and ZooKeeper formats we speak. Clients such as pymesos parse it
# as integers, so it must stay a plain numeric dotted string.
MESOS_COMPATIBLE_VERSION = "1.11.0"

# The Marathon release whose /v2 API we speak (reported by /v2/info).
MARATHON_COMPATIBLE_VERSION = "1.11.24"
