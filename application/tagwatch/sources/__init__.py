"""Post sources: the X API v2 client and the built-in sample that speaks the same protocol."""
