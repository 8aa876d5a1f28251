"""The agent: runs tasks for the master (`mesolite agent`) and supervises each one (`mesolite executor`)."""
