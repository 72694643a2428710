"""Generate stage: turn retrieved hits into a cited answer with a chosen generator."""
