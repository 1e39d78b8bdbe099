"""The ``gridatlas`` command line: the edge that owns one transaction per command."""
