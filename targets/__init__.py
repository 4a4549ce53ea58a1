"""Inference backends behind one small ``Backend`` protocol, plus device profiles."""
