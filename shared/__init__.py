"""The kernel every service shares: settings, models, logs, database and broker helpers."""
