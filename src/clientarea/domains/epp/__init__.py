"""The EPP registrar driver (RFC 5730 to 5734): ``EppRegistrarDriver``."""

from .driver import EppRegistrarDriver

__all__ = ["EppRegistrarDriver"]
