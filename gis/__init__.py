"""Grid Atlas spatial core: import, storage and analysis of the community grid hierarchy."""
