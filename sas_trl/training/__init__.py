"""`sas-trl train` as a library: recipes (parse and check), launch (processes), run (the steps), hub, progress."""
