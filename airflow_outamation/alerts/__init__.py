"""Per-project expectations and the alerts sent when one is not met (and when it is met again)."""
