"""Errors that stop a curation run (as opposed to a bad record, which is rejected with a reason)."""


class SetupError(ValueError):
    """A model, hook or tokenizer the configuration names cannot be loaded: fix the config and rerun."""
