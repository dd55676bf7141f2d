"""Renewal forecasts: probability and category per renewal from explicit signals, grouped in SQL."""
