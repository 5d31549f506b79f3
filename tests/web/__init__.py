"""The web cabinet's tests: pages in process and a real browser against a running installation."""
