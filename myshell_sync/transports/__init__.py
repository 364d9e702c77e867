"""Transports: each sends requests its own way and fills the same mailbox.

``base`` holds the interface; ``websocket``, ``http`` and ``auto`` the
transports. ``http`` (and so ``requests``) is imported only when used.
"""
