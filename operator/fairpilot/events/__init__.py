"""What FairPilot tells the rest of the company: the Kafka payloads (the seed's contract) and
the events a resource's state calls for. The Kafka publisher and the warehouse both send these,
so they live below both."""
