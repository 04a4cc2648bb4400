"""The native JSON API (`/v1`) and the dashboard."""
