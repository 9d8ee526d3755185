"""The Kafka bridge: seed 001's topics into resources, resources' progress into topics."""
