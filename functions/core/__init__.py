"""Code shared by the submit, result and worker functions: the task domain and its AWS adapters."""
