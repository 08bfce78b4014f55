"""tf-migrate: migrate TensorFlow 1.x training code to TensorFlow 2, and prove it numerically."""

__version__ = "0.1.0"
