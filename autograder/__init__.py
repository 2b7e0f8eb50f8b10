"""Auto-graded PyTorch autograd labs: build, grade in isolation, export to LMS."""

__version__ = "0.1.0"
