"""The Marathon-compatible scheduler: a framework of the master that keeps long-running apps running."""
