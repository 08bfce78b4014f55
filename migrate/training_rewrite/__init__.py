"""Rewrite TF1 Session training programs into TF2 GradientTape train steps (rule TFM400)."""
