"""Tests of the use cases (operations/)."""
