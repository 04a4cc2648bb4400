"""loadbay: a self-hosted bulk import service."""

__version__ = "0.1.0"
__all__ = ["__version__"]
