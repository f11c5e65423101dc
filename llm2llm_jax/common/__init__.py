"""Small shared utilities every layer may use: errors, storage, console output, the device mesh, offline
assets, disk faults, derived seeds and config sections. Nothing here imports the rest of the package."""
