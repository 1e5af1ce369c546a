"""history-worker: records every event of `contacts.events` as one version row of its contact."""
