"""FastAPI adapter: app factory and lifespan, settings, dependencies, schemas, routes."""
