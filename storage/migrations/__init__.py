"""Alembic environment and revisions of the nightlegs schema."""
