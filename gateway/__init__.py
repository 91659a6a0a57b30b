"""A high-throughput S2S postback gateway."""

__all__ = ("__version__",)

__version__ = "0.1.0"
