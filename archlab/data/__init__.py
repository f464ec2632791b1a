"""Data loading: image sets (this package), sales panels and text corpora."""
