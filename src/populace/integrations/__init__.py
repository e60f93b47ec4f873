"""Integrations with training frameworks, each imported on its own (torch: `.torch`)."""
