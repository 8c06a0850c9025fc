"""The ``llmrouter`` command line (typer + rich)."""
