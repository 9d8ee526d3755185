"""The operator: Kopf handlers over plain reconcile functions."""
