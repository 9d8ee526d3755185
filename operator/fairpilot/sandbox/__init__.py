"""The sandbox: the whole of FairPilot on one machine, with no cluster."""
