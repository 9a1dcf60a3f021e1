"""ESGAR: explicitly semantic guidance for face sketch attribute recognition."""

__version__ = "0.1.0"
