"""Wire formats: RecordIO framing, v1 JSON helpers, and the master<->agent messages."""
