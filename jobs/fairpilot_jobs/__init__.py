"""FairPilot stage jobs."""
