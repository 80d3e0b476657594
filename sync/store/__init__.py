"""The state store adapter: SQLAlchemy Core over SQLite (default) or PostgreSQL."""
