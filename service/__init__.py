"""FastAPI prediction service. Not built yet: the service issue adds it (README, "Roadmap")."""
