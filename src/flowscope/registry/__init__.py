"""Model registry: versions, lifecycle and promotion."""
