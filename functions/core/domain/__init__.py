"""The task and its rules, free of AWS: the record, the lifecycle's writes and their conditions, the store's port,
listing and polling rules, who a caller is."""
