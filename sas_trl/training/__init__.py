"""`sas-trl train` as a library: recipes (read, parse and check), launch (processes), run (the steps), the output
folder's state, the built-in model's warm-up cache, the training data, hub, progress."""
