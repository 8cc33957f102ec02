"""The telemetry event store and its sinks (spec §6)."""
