"""See the package docstring of :mod:`mastering` for conventions."""
