"""The only package that issues SQL: the audit trail, rotation state and leases in PostgreSQL."""
