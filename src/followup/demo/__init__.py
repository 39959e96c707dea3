"""A synthetic wallet world and its month of follow-ups, for `followup demo`."""
