"""The /v2 REST API (Marathon 1.x paths, status codes and bodies); handlers translate between wire and domain."""
