"""trackflow: the runners (CLI, stage wrappers, parameters) around the pure work in `components`."""
