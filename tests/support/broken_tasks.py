"""A task module that fails at import, as one does after a bad edit: the local stack must say so and exit."""

raise RuntimeError("this task module is broken on purpose")
