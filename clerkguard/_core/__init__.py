"""The sans-I/O core of clerkguard.

Rule: nothing in this package opens a socket, starts a thread, sleeps, or
imports a web framework. Every decision (token shape, JSON strictness, header
and claim checks, key validation, the JWKS cache state machine) lives here so
the sync and async shells differ only in how JWKS bytes are fetched.
"""
