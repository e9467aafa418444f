"""Shared, Ray-free utilities of the project (typed configuration loading)."""
