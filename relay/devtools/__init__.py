"""Development helpers: a private Redis, the `relay dev` orchestration."""
