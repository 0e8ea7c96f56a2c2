"""Other RL engines running the same SAS rule (`sas_trl.core.SASRule`) as the TRL trainer.

Each module here imports its engine at module level and is loaded by that engine, never by `import sas_trl`.
"""
