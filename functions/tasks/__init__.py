"""The long-running tasks this API serves: one module each, registered with `core.registry.task`."""
