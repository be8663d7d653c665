"""The package version (a leaf: records stamp it without importing the package)."""
__version__ = "0.1.0"
