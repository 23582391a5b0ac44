"""The API's HTTP side: API Gateway events in, responses out, domain errors mapped to statuses in one place; the
OpenAPI document."""
