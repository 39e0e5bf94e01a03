"""Errors raised by cosmoext's build side; the CLI prints them as one line."""


class CosmoextError(Exception):
    """A user-facing build error: ``cosmoext: error: <message>``."""


class LinkError(CosmoextError):
    """The linker cannot produce an image (names object, section, reason)."""


class ToolchainError(CosmoextError):
    """A compiler or tool is missing or failed."""
