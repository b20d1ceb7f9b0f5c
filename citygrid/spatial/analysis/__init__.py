"""Analysis over cases and components: caseload per area (here), density rasters, recurrence (to come)."""
