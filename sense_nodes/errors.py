"""Errors shared by every layer (the bottom of the import graph: this module
imports nothing of the package, so the core, the data, the evaluation and
the command line can all raise and catch the same classes).

* :class:`UserError` - a problem with the user's input (a file, an option):
  the command line prints it on one line and exits with status 2.
* :class:`MalformedMessage` - an input message a converter cannot use (wrong
  layout, sizes, values); a node drops it, counts it and logs the first of
  each kind at WARN. Anything else raised while handling a message is a bug:
  the node logs it at ERROR with its traceback and counts it apart.
* :class:`NonFiniteInput` - a malformed message holding NaN, infinity or a
  value too large to compute with.
"""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (file, parameter): printed, exit 2."""


class MalformedMessage(Exception):
    """An input message the node cannot use (wrong layout, sizes, values).

    Deliberately not a ``ValueError``: numpy and the core raise
    ``ValueError`` for bugs too (shape mismatches), and those must not be
    mistaken for bad input."""


class NonFiniteInput(MalformedMessage):
    """Input holding NaN, infinity or a value too large to compute with."""
