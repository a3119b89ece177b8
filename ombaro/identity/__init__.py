"""Identity: accounts, passwords, tokens and encrypted personal fields.

Authentication reads what the request role may never read (password hashes, refresh tokens), so
these functions run on the service connection (the owner, which bypasses row-level security)."""
