"""The notifier: live contact events over WebSocket `/ws` (SPEC §4)."""
