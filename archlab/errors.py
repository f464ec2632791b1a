"""User-facing error type: bad input or usage, reported as one line with exit code 2."""

from __future__ import annotations


class ArchlabError(Exception):
    """A problem with the user's input (file, column, value, flag) rather than a bug.

    The CLI prints ``archlab: error: <message>`` on one line and exits with code 2.
    Messages name the offending file/column/value and, where possible, the fix. Line breaks
    inside a message (a column name or value read from a broken file can hold them) are
    written as ``\\n`` so that the message stays one line whatever it quotes.
    """

    def __init__(self, message: object = "", *args: object) -> None:
        text = str(message)
        for raw, shown in (("\r\n", "\\n"), ("\n", "\\n"), ("\r", "\\r")):
            text = text.replace(raw, shown)
        super().__init__(text, *args)


class NonFiniteLossError(ArchlabError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept."""
