"""engine-gateway: a streaming gateway for Camunda 7-compatible process engines."""
