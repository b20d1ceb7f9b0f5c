"""``make bench``: each benchmark times ours and its anchor on the same data in the same run."""
