"""The recommendation domain: no HTTP here, only arrays, models and the store."""
