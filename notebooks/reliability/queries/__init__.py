"""The questions `tables.TaskTables` answers, one class each (see `tables`)."""
