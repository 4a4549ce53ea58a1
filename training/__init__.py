"""edgekit training: datasets, synthetic benchmark, flow teacher, models, losses, train/eval.

Uses torch; the runtime package ``edgekit`` never imports anything from here.
"""
