"""followup: a self-hosted follow-up engine for digital wallets."""

__version__ = "0.1.0"
