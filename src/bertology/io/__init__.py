"""Reading and writing files: data sets by name, every input format, atomic results."""
