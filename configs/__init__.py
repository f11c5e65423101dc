"""ml_collections configs; each module's get_config() builds on base.base_config()."""
