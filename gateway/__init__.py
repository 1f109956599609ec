"""Transactive Gateway: one canonical transactive message model between OpenADR, IEEE 2030.5, EI/TeMIX and CIM."""

__version__ = "0.1.0"
