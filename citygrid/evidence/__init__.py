"""Evidence attached to cases: photos checked by content, stripped of their metadata, stored by content hash."""
