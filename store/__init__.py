"""Persistence and ingestion: SQLAlchemy tables, sessions, repository functions, sources."""
