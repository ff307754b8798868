"""Small helpers shared by every room (no mmengine, no torch)."""
from .fileio import atomic_write_bytes, atomic_write_text

__all__ = ['atomic_write_bytes', 'atomic_write_text']
