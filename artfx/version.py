"""The version, on its own so that any layer can name it without importing the front door (artfx/__init__)."""

__version__ = "0.2.0"
