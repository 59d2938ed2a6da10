"""Metrics shared by several papers (pose, point sets, detection, generative models)."""
