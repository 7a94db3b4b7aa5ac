"""The only package that talks to AI Core: service keys, XSUAA tokens, registry secret calls."""
