"""Test helpers shipped with the package: a drive bench now; fixtures for whole installations later."""
