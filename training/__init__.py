"""edgekit training: datasets, synthetic benchmark, flow teacher, models, losses, train/eval.

Uses torch. The runtime package ``edgekit`` imports from here only when a user asks for a training-side
feature: the CLI's training commands, and ``edgekit profile --compare`` (:mod:`training.rgb_flow`).
"""
