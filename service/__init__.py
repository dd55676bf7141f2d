"""Quarterback: a headless customer-lifecycle service for B2B SaaS companies."""

__version__ = "0.1.0"
