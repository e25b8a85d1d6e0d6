"""Measurement on a real device: timing, output error, cache bytes. Imports torch."""
