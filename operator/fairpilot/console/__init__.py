"""`fairpilot console`: a read-only web console for FairPilot's pipelines.

One module per idea: `data` reads the cluster (namespaces, pipelines, a resource, its events,
its pod's log) through the operator's `Cluster`; `artifacts` opens reports below a namespace's
artifact root and nothing else; `web` holds the routes and `templates/` the pages; `server`
runs it (a blocking server for the command, a thread for the sandbox and tests).
"""
