"""What the spa desk refuses, in a module of its own: the spa API maps each to its status code without importing
the desk (its models, the store's ports and the policy) at cold start."""

from __future__ import annotations


class NotFound(LookupError):
    """No such record at this spa (the message names what, never another spa's data)."""


class NotOpen(ValueError):
    """The visit is cancelled, completed or missed: there is nothing left to cancel."""


class NotWaivable(ValueError):
    """Only a violation's fee is waived (a card fee's purpose): the message names the ones there are."""
