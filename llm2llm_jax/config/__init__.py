"""The run config: every section's values and the checks across sections, before any work (checks.py), and the
run's identity in its directory (snapshot.py). The config itself is an ml_collections ConfigDict
(configs/base.py); the packages build their typed settings from its sections (TrainHParams,
TeacherSettings)."""
