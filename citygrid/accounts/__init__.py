"""Accounts: users with roles, API tokens, web sessions, and what each role may do."""
